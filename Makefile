# Every target makes its own virtualenv (.venv) from pyproject.toml, pinned by constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# make test installs the runtime and the dev toolchain (STAMP); make run the runtime only
STAMP     := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

# Debian packages the tests run, as command:package: a real Redis, the bench's load generator, and
# a real BIND with nsupdate (the RFC 2136 provider's tests)
TOOLS  := redis-server:redis-server wrk:wrk named:bind9 nsupdate:bind9-dnsutils

.PHONY: run test lint typecheck unit tools bench bench-quick bench-compare soak clean constraints smoke-floors smoke-newest

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $(RUN_STAMP)

## run: serve on the embedded default (in-memory provider), 127.0.0.1:7100, management :8080;
##      installs the runtime dependencies only (the dev toolchain comes with make test)
run: $(RUN_STAMP)
	$(BIN)/dns-sidecar serve

## demo: the README's five-minute walkthrough: the Cloudflare emulator on :8787 and the sidecar
##       on config/routing.local.yaml (:7100, management :8080); Ctrl-C stops both
.PHONY: demo
demo: $(RUN_STAMP)
	dev/demo.sh

## test: lint, type-check, layering contract, and the whole test suite with branch coverage
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check sidecar tests bench
	$(BIN)/ruff format --check sidecar tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy sidecar

unit: $(STAMP) tools
	$(BIN)/pytest --cov --cov-branch --cov-report=term $(PYTEST_ARGS)

## tools: the Debian packages the tests run; installed with apt-get when missing and run as root
tools:
	@missing=""; for pair in $(TOOLS); do tool=$${pair%%:*}; \
	  command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (Debian packages the tests run)"; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "make test needs$$missing: install them (Debian: sudo apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

## bench: the benchmark suite (a few minutes; needs wrk); prints CPU per request and the ratio
##        to a bare aiohttp handler, marks a missed target, writes the table into docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m bench --out docs/benchmarks.md
	$(BIN)/python -m bench.dnsrecord_sweep

## bench-quick: the same scenarios with tiny counts (seconds), to keep the suite working; no
##              timing is asserted
bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick
	$(BIN)/python -m bench.dnsrecord_sweep --quick

## soak: 3 replicas on a real Redis against the emulator for 180 s of random writes and reads under
##       Redis restarts, a killed lease holder, 503s and a 429 (5 to 6 minutes); exits 1 on a
##       violation (SOAK_ARGS="--seconds 600 --replicas 5" for a longer one)
soak: $(STAMP) tools
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

## smoke-floors: the smoke test (tests/test_smoke.py: serve, signed calls, Redis, Kubernetes, the
##               Cloudflare SDK; with the HTTPS, RFC 2136 and provider-contract tests) at the
##               lowest versions pyproject.toml allows, resolved by uv
##               (lowest-direct) in .venv-floors; needs the package registry
## smoke-newest: the same at the newest releases, without constraints.txt, in .venv-newest
UV_INDEX   = $(shell $(BIN)/python dev/uv_index_args.py)
# the smoke, and the tests of what the smoke does not reach (HTTPS: cryptography; RFC 2136 on a
# real BIND: dnspython; the provider contract over memory, Cloudflare and BIND)
SMOKE_ARGS = -m pytest tests/test_smoke.py tests/test_tls.py tests/test_rfc2136.py \
  tests/test_provider_contract.py -q -p no:cacheprovider -p no:anyio
SMOKE_TOOLS = pytest pytest-asyncio  # what the smoke runs under, newest that fits

smoke-floors: $(STAMP) tools
	rm -rf .venv-floors && $(PYTHON) -m venv .venv-floors
	$(BIN)/uv pip compile --quiet --no-header --no-annotate --resolution lowest-direct \
	  --python .venv-floors/bin/python $(UV_INDEX) pyproject.toml -o .venv-floors/floors.txt
	$(BIN)/uv pip install --quiet --python .venv-floors/bin/python $(UV_INDEX) \
	  -r .venv-floors/floors.txt $(SMOKE_TOOLS)
	$(BIN)/uv pip install --quiet --python .venv-floors/bin/python $(UV_INDEX) --no-deps -e .
	@echo "floors:" $$(grep -v '^#' .venv-floors/floors.txt | tr '\n' ' ')
	.venv-floors/bin/python $(SMOKE_ARGS)

smoke-newest: $(STAMP) tools
	rm -rf .venv-newest && $(PYTHON) -m venv .venv-newest
	$(BIN)/uv pip install --quiet --python .venv-newest/bin/python $(UV_INDEX) -e . $(SMOKE_TOOLS)
	@echo "newest:" $$($(BIN)/uv pip freeze --python .venv-newest/bin/python --exclude-editable | tr '\n' ' ')
	.venv-newest/bin/python $(SMOKE_ARGS)

## bench-compare: the sidecar at git revision REV (default main) against the working tree, beside
##                the bare handler, in one run (ratios round by round); REV may be a directory
bench-compare: $(STAMP)
	$(BIN)/python -m bench.compare $(or $(REV),main)

## constraints: re-pin every dependency after changing pyproject.toml
constraints: $(STAMP)
	$(BIN)/pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .venv-floors .venv-newest .coverage .pytest_cache .mypy_cache .ruff_cache

## image: build the image dns-sidecar:VERSION (VERSION from pyproject.toml); IMAGE=REGISTRY/dns-sidecar:TAG
## names it otherwise, CONTAINER_ENGINE=podman builds with podman, IMAGE_BUILD_FLAGS adds flags
## (a base: --build-arg PYTHON_IMAGE=...; pip settings: $$(python3 dev/build-mounts.py), podman)
VERSION           ?= $(shell $(PYTHON) -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
IMAGE             ?= dns-sidecar:$(VERSION)
CONTAINER_ENGINE  ?= docker
IMAGE_BUILD_FLAGS ?=
.PHONY: image image-test
# The labels go in twice: as build args for the Dockerfile's LABEL (builds without make), and as
# --label, since podman reuses a cached LABEL step whose ARG changed (a stale revision).
SOURCE   = $(shell git config --get remote.origin.url)
REVISION = $(shell git rev-parse HEAD 2>/dev/null)
image:
	$(CONTAINER_ENGINE) build \
	  --build-arg VERSION=$(VERSION) \
	  --build-arg SOURCE=$(SOURCE) \
	  --build-arg REVISION=$(REVISION) \
	  --label org.opencontainers.image.version=$(VERSION) \
	  --label org.opencontainers.image.source=$(SOURCE) \
	  --label org.opencontainers.image.revision=$(REVISION) \
	  $(IMAGE_BUILD_FLAGS) --tag $(IMAGE) .

## image-test: build the image with podman (on a debootstrap stand-in base when no registry is
##             reachable, with this machine's pip settings) and run it as it ships; needs root,
##             podman, runc and debootstrap (.ci/run installs them)
image-test: $(STAMP)
	$(BIN)/pytest tests/test_image.py -p no:cacheprovider -v $(PYTEST_ARGS)

## settings-table: rewrite the settings table in docs/configuration.md from sidecar/settings.py
.PHONY: settings-table
settings-table: $(STAMP)
	$(BIN)/python -m tests.settings_table --write docs/configuration.md
