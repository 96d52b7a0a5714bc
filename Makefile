# trmgym — the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0
EXTRAS ?= dev,joblib,ray,faiss,sb3
# setuptools' notice on every editable install ("Editable installation. Please be careful with
# folders in your working directory with the same name as your package ..."), information only:
# a warnings filter on its message, after any PYTHONWARNINGS of yours. Errors still print and fail.
EDITABLE_NOTICE := ignore:Editable installation

.PHONY: install run test test-fast bench lint format clean

install: $(STAMP)

# Reinstall only when the project's dependencies change; quiet when already installed.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@echo "installing torch==$(TORCH_VERSION) (CPU build from this machine) and trmgym[$(EXTRAS)] into $(VENV)"
	@$(PIP) install "torch==$(TORCH_VERSION)" 2>&1 | grep -v '^WARNING: Location' ; test $${PIPESTATUS[0]} -eq 0
	@PYTHONWARNINGS="$${PYTHONWARNINGS:+$$PYTHONWARNINGS,}$(EDITABLE_NOTICE)" $(PIP) install -e ".[$(EXTRAS)]" 2>&1 | grep -v '^WARNING: Location' ; test $${PIPESTATUS[0]} -eq 0
	@touch $(STAMP)

run: install
	$(VENV)/bin/trmgym run $(ARGS)

test: install
	$(PY) -m pytest -q --durations=20 $(ARGS)

test-fast: install
	$(PY) -m pytest -q -m "not slow" $(ARGS)

bench: install
	$(PY) benchmarks/bench_envs.py
	$(PY) benchmarks/bench_trm.py --hidden 512 --h-cycles 3 --l-cycles 6 --batch 8 --seq 81 --device cpu --repeats 4

lint: install
	$(VENV)/bin/ruff check trmgym tests benchmarks
	$(VENV)/bin/ruff format --check trmgym tests benchmarks

format: install
	$(VENV)/bin/ruff format trmgym tests benchmarks
	$(VENV)/bin/ruff check --fix trmgym tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
