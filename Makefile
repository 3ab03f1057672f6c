# servelab: the two commands are `make demo` and `make test`; both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.servelab-installed

.PHONY: venv demo test test-fast bench dashboard lock clean

venv: $(STAMP)

# pip (not uv/poetry): the pinned CPU torch wheel is found by pip only.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[all,test]'
	@touch $(STAMP)

demo: venv
	$(VENV)/bin/servelab demo $(DEMO_ARGS)

test: venv
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: venv
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run_all.py

dashboard: venv
	$(VENV)/bin/servelab dashboard

# Regenerate the pinned environment from the current venv.
lock: venv
	$(PY) -m pip freeze --exclude-editable | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
