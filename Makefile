# One venv per Django line, made on first use; `make test` needs nothing run before it.
PYTHON ?= python3
VENV ?= .venv
DJANGO ?= Django>=5.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint format bench load scenarios demo serve dist smoke ci clean isbot durable

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" "$(DJANGO)"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The example shop, real visitors over HTTP, and what Kameleoon would receive; exits 0 when right.
demo: $(STAMP)
	$(BIN)/python example_project/demo.py

# The example shop on http://127.0.0.1:$(PORT)/ and the local collector beside it; Ctrl-C stops both.
PORT ?= 8000
COLLECTOR_PORT ?= 8765
serve: $(STAMP)
	$(BIN)/python example_project/serve.py --port $(PORT) --collector-port $(COLLECTOR_PORT)

# Ours against kameleoon-client-python, posthog and user-agents, side by side, on this machine
# only (every client talks to a local sink); prints the table and writes benchmarks/last-run.txt.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]" "$(DJANGO)"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

# Only the real-server figure (gunicorn sync and gthread, uvicorn; wrk if installed), ~7 minutes.
load: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --only load --no-write

# Delivery under real servers and scripted faults (sent / received / lost / duplicated per
# scenario); `make scenarios SCENARIOS=--markdown` prints the README's table. Exits 1 if a row
# misses its expectation.
SCENARIOS ?=
scenarios: $(STAMP)
	$(BIN)/python -m benchmarks.scenarios $(SCENARIOS)

# Vendor isbot's bot pattern list (npm and node needed): `make isbot` or `make isbot ISBOT=5.2.3`.
ISBOT ?= latest
isbot:
	$(PYTHON) tools/update_isbot.py $(ISBOT)

# The sdist and the wheel as an index would get them: twine check --strict, LICENSE in both,
# every tracked file in the sdist and its tests run from it.
dist: $(STAMP)
	$(BIN)/python tools/check_dist.py

# The wheel in a fresh venv and a startproject site; one page view reaches the collector.
smoke: $(STAMP)
	$(BIN)/python tools/smoke.py

# Everything CI runs, from services to the tox matrix (tox.ini) and `make dist smoke`.
ci:
	bash .ci/run

clean:
	rm -rf .venv .venv-* .tox .mypy_cache .ruff_cache .pytest_cache *.egg-info build dist

# The durable backends' figures (Celery on the local Redis): request-path cost side by side
# with the threaded backend, and events per second per Celery worker process.
durable: $(STAMP)
	$(BIN)/python -m benchmarks.durable
