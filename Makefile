# pitstop — `make demo` and `make test` set everything up on a fresh machine, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := dev,server,ui,demo,spark
STAMP  := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium

.PHONY: install demo test test-min test-install lint format bench bench-ingest bench-spark bench-promote fuzz clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: install
	$(BIN)/python examples/demo.py

test: lint $(CHROMIUM)
	$(BIN)/python -m pytest -q

# Debian's Chromium, which the browser tests (tests/ui) drive through Playwright; nothing to
# do when it is there already.
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix src tests benchmarks examples
	$(BIN)/ruff format src tests benchmarks examples

# The same code against the LOWEST versions pyproject.toml allows for its direct dependencies,
# in a venv of its own (uv resolves them; pip cannot). The venv leaves out the spark extra, so the
# conformance suite's Spark cases are deselected there.
MIN_VENV   := .venv-min
MIN_STAMP  := $(MIN_VENV)/.installed
MIN_EXTRAS := dev,server
MIN_TESTS  := tests/conformance/offline/test_pit.py tests/conformance/offline/test_job.py \
              tests/conformance/offline/test_aggregations.py tests/test_duckdb_engine.py \
              tests/test_online_stores.py tests/test_online_serving.py tests/test_push_exact.py \
              tests/test_registry_store.py tests/test_feature_store.py tests/test_types.py \
              tests/test_encoding.py tests/test_server.py tests/test_cli.py

$(MIN_STAMP): pyproject.toml
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(MIN_VENV)/bin/uv pip install --quiet --python $(MIN_VENV)/bin/python \
		--resolution lowest-direct -e '.[$(MIN_EXTRAS)]'
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/python -m pip list --format=freeze --disable-pip-version-check \
		| grep -iE '^(pyarrow|duckdb|pandas|numpy|pydantic|redis|psycopg)='
	$(MIN_VENV)/bin/python -m pytest -q -k 'not spark' $(MIN_TESTS)

# A fresh venv with `pip install .` and no extras runs init, apply, a listing and a training set.
test-install: install
	$(BIN)/python -m pytest -q -m install tests/test_install.py

bench: install
	$(BIN)/python benchmarks/run.py

# events/s from Redis Streams, NATS JetStream, RabbitMQ, MQTT and the Kafka fake into Redis tiles
bench-ingest: install
	$(BIN)/python benchmarks/ingest_bench.py

# /get-online-features under wrk for 30 s while another process promotes and rolls back the
# served view (needs wrk: apt-get install -y wrk); PROMOTE_BENCH_ARGS=--registry postgresql://...
bench-promote: install
	$(BIN)/python benchmarks/promote_under_load.py $(PROMOTE_BENCH_ARGS)

# The Spark engine against DuckDB at 10M and 100M entity rows (long); SPARK_BENCH_ARGS=--scale 0.01
# runs the same at 1/100 of the sizes.
bench-spark: install
	$(BIN)/python benchmarks/spark_bench.py $(SPARK_BENCH_ARGS)

# The feature server against its OpenAPI document (Schemathesis), many examples per endpoint
FUZZ_EXAMPLES ?= 300
fuzz: install
	PITSTOP_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q \
		tests/test_server_schema.py tests/test_server_fuzz.py

clean:
	rm -rf $(VENV) $(MIN_VENV) .pytest_cache .mypy_cache .ruff_cache build dist
