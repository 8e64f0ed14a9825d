# Every target makes its own virtualenv (.venv) from pyproject.toml, pinned by constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Debian packages the tests run, as command:package: a real Redis, the bench's load generator, and
# a real BIND with nsupdate (the RFC 2136 provider's tests)
TOOLS  := redis-server:redis-server wrk:wrk named:bind9 nsupdate:bind9-dnsutils

.PHONY: run test lint typecheck unit tools bench bench-quick clean constraints

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## run: serve on the embedded default (in-memory provider), 127.0.0.1:7100, management :8080
run: $(STAMP)
	$(BIN)/dns-sidecar serve

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

## constraints: re-pin every dependency after changing pyproject.toml
constraints: $(STAMP)
	$(BIN)/pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) .coverage .pytest_cache .mypy_cache .ruff_cache

## image: build the image dns-sidecar:VERSION (VERSION from pyproject.toml); IMAGE=REGISTRY/dns-sidecar:TAG
## names it otherwise, CONTAINER_ENGINE=podman builds with podman
VERSION          ?= $(shell $(PYTHON) -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
IMAGE            ?= dns-sidecar:$(VERSION)
CONTAINER_ENGINE ?= docker
.PHONY: image
image:
	$(CONTAINER_ENGINE) build \
	  --build-arg VERSION=$(VERSION) \
	  --build-arg SOURCE=$(shell git config --get remote.origin.url) \
	  --build-arg REVISION=$(shell git rev-parse HEAD 2>/dev/null) \
	  --tag $(IMAGE) .

## settings-table: rewrite the README's settings table from the declarations in sidecar/settings.py
.PHONY: settings-table
settings-table: $(STAMP)
	$(BIN)/python -m tests.settings_table --write README.md
