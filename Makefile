# Two commands on a fresh machine:  `make demo` (main job)  and  `make test` (test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flex-installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install demo test bench-cpu

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/flex-judge demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -x -q --durations=15 tests

bench-cpu: $(STAMP)
	$(PY) benchmarks/adapter_overhead.py
