-- wrk script: send pre-signed requests, read from a file, each exactly once.
--
-- The file (written by bench/presigned.py before the run) holds raw HTTP/1.1 requests, each
-- preceded by a line with its length in bytes. Every request carries its own nonce, so the
-- load generator signs nothing while it runs. The last SPARE requests are for the calls wrk
-- makes while it stops (a nonce sent twice would be refused). When the others run out, the
-- thread stops and creates the file MARKER; bench/wrk.py then interrupts wrk (SIGINT), which ends the run: a
-- fixed-count run. done() prints one JSON line for bench/wrk.py.
--
--   wrk -t1 -c64 -d600s -s bench/presigned.lua URL -- FILE MARKER SPARE

local requests = {}
local index = 0
local marker
local last

function init(args)
  marker = args[2]
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local position = 1
  while position <= #data do
    local newline = data:find("\n", position, true)
    local size = tonumber(data:sub(position, newline - 1))
    requests[#requests + 1] = data:sub(newline + 1, newline + size)
    position = newline + size + 1
  end
  last = #requests - tonumber(args[3])
end

local verified = false

function request()
  if not verified then  -- wrk calls request() once to check it, and sends nothing then
    verified = true
    return requests[1]
  end
  index = index + 1
  if index == last then
    assert(io.open(marker, "w")):close()
    wrk.thread:stop()
  end
  return requests[math.min(index, #requests)]
end

function done(summary, latency)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
      .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max
  ))
end
