# Two commands on a fresh machine:  `make demo` (main job)  and  `make test` (test suite).
# Both install .venv first, through the pinned lock requirements/cpu.lock.txt (docs/install.md).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flex-installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install demo test bench-cpu lock check-latest

$(STAMP): pyproject.toml requirements/cpu.lock.txt scripts/install.sh scripts/pins.sh scripts/cpu_torchvision_shim.py
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

# Re-resolve requirements/cpu.lock.txt from pyproject.toml (needs the package registry).
lock:
	bash scripts/lock.sh

# Drift watch: install WITHOUT the lock (newest releases the ranges allow) into a scratch venv and
# run the fast tests, so a breaking upstream release is seen here before users see it.
check-latest:
	bash scripts/check_latest.sh
