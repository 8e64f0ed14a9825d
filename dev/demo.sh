#!/bin/sh
# make demo: the Cloudflare emulator (demo.example and lab.example) and dns-sidecar serving
# config/routing.local.yaml, in the foreground; Ctrl-C stops both. The README's walkthrough.
# DEMO_EMULATOR_PORT and DEMO_CONFIG (a table whose baseUrl names that port) move the emulator;
# DNS_SIDECAR_PORT and DNS_SIDECAR_MANAGEMENT_PORT move the sidecar.
set -eu
cd "$(dirname "$0")/.."
bin=${DEMO_BIN:-.venv/bin}
port=${DEMO_EMULATOR_PORT:-8787}
config=${DEMO_CONFIG:-config/routing.local.yaml}
"$bin/dns-sidecar" cloudflare-emulator --port "$port" --zone demo.example --zone lab.example \
  --token dev-token --api-key demo-global-key --email dev@demo.example &
emulator=$!
trap 'kill "$emulator" 2>/dev/null || true' EXIT
trap 'exit 0' INT TERM
"$bin/python" - "$port" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 20
while True:  # poll with a deadline until the emulator answers
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/__emulator/stats", timeout=1)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("the Cloudflare emulator did not start")
        time.sleep(0.1)
PY
DEMO_CLOUDFLARE_TOKEN=${DEMO_CLOUDFLARE_TOKEN:-dev-token} \
  "$bin/dns-sidecar" serve --config "$config" --log-format "${DNS_SIDECAR_LOG_FORMAT:-console}"
