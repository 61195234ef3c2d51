# Walkout — the commands every user has: make demo, make test, make bench.
# The first target that needs the virtualenv creates it (and re-installs when pyproject.toml changes).

VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)

# Never let the vision stack reach for a model hub at run time.
export YOLO_OFFLINE := 1

.PHONY: help venv demo test test-unit lint bench clean distclean

help:
	@echo "make demo       run the whole store on embedded defaults (SQLite + embedded broker)"
	@echo "make test       the full suite: unit, integration (Mosquitto, PostgreSQL) and e2e"
	@echo "make test-unit  the fast unit tier only"
	@echo "make lint       ruff + mypy"
	@echo "make bench      throughput and latency benchmark"
	@echo "make clean      remove caches and run artefacts (distclean: the venv too)"

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q -e '.[dev,vision]'
	@touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/walkout demo

test: $(VENV)/.installed
	$(VENV)/bin/pytest -q

test-unit: $(VENV)/.installed
	$(VENV)/bin/pytest tests/unit -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/mypy edge store_server sensors sim_data

bench: $(VENV)/.installed
	@$(VENV)/bin/walkout bench --help >/dev/null 2>&1 || { \
		echo "make bench: 'walkout bench' is not available in this checkout yet" \
		     "(check with: $(VENV)/bin/walkout --help)" >&2; exit 1; }
	$(VENV)/bin/walkout bench

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache test-artifacts build dist
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) var *.egg-info
