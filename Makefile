# The two set-up commands in README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# WEIGHTS empty: `demo` uses pretrained weights if cached or the hub answers, else random (and says why)
WEIGHTS ?=
OUT ?= site
PYTEST_ARGS ?=
PYTEST_JOBS ?= -n 2 --dist loadgroup

.PHONY: demo test lint docs chromium axe clipart screenshot clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

# The accel extra's OpenVINO and NNCF (pyproject.toml; test_packaging checks the two agree), beside .venv
# rather than in it: installed there, `--backend auto` would run every real-model test on it.
# `make test` runs the tests marked openvino a second time with it on PYTHONPATH.
ACCEL := $(VENV)/accel
# NNCF (--precision int8) and those of its dependencies that .venv lacks
ACCEL_PACKAGES := "openvino>=2024.4" "openvino-telemetry>=2023.2.1" "nncf>=2.14" "ninja>=1.10" "pydot>=1.4.1,<=4.0.1" "pyparsing>=3" "tabulate>=0.9"
$(ACCEL)/.installed: $(VENV)/.installed-test
	$(BIN)/pip install -q --no-deps --target $(ACCEL) $(ACCEL_PACKAGES)
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/dinoclust demo $(if $(WEIGHTS),--weights $(WEIGHTS)) -o $(OUT)

chromium:
	@bash scripts/ensure-chromium.sh

axe:
	@bash scripts/ensure-axe.sh

clipart:
	@bash scripts/ensure-clipart.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The documentation site (mkdocs.yml): --strict, so a broken link or a missing page fails.
docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 PYTHONPATH=. $(BIN)/mkdocs build --strict

# The tests run in a random order (pytest-randomly): each run's header says `Using
# --randomly-seed=N`, and `make test PYTEST_ARGS=--randomly-seed=N` runs that order again.
# They run on two pytest-xdist workers (PYTEST_JOBS= runs them in one process): README,
# Development, says what that saved.
test: $(VENV)/.installed-test $(ACCEL)/.installed chromium axe clipart lint docs
	$(BIN)/python -m pytest $(PYTEST_JOBS) $(PYTEST_ARGS)
	DINOCLUST_TEST_ACCEL=1 PYTHONPATH=$(ACCEL) $(BIN)/python -m pytest -m openvino $(PYTEST_ARGS)

screenshot: $(VENV)/.installed-test chromium
	$(BIN)/dinoclust demo --weights $(or $(WEIGHTS),random) -o $(OUT) -q
	$(BIN)/python scripts/screenshot.py $(OUT)/index.html docs/screenshot.png --k 3

clean:
	rm -rf $(VENV) dist build
