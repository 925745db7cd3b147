# Quick start:  make lab   (set up, then open JupyterLab on notebooks/)
#               make test  (set up, then run every test)
# Both are safe to run again: set-up reruns only when pyproject.toml changes.
#   make setup PYTHON=python3.13   a venv on another Python (3.10 or newer)
#   make setup TORCH=cpu           PyTorch's CPU-only build (Linux: about 1 GB instead of 6 GB)
PYTHON ?= python3
VENV ?= .venv
TORCH ?=
# A pyenv shim for a Python that is installed but not selected ("pyenv: python3.13: command not
# found"): ask pyenv where that version's interpreter is.
PYTHON_EXE = $(shell $(PYTHON) -c '' 2>/dev/null && echo $(PYTHON) || { v=$$(pyenv versions --bare 2>/dev/null \
	| grep -E '^$(subst .,\.,$(patsubst python%,%,$(PYTHON)))(\.|$$)' | tail -n 1); \
	[ -n "$$v" ] && PYENV_VERSION=$$v pyenv which $(PYTHON) || echo $(PYTHON); })
BIN := $(VENV)/bin
READY := $(VENV)/.ready

# uv installs the packages, in one resolution.
# uv does not read pip's configuration, so the indexes and wheel folders pip is set up with (a
# company mirror, a local wheel cache) are passed on to it.
pip_config = $(shell $(PYTHON_EXE) -m pip config get global.$(1) 2>/dev/null)
UV_INDEXES = $(addprefix --index-url ,$(or $(PIP_INDEX_URL),$(call pip_config,index-url))) \
	$(addprefix --extra-index-url ,$(or $(PIP_EXTRA_INDEX_URL),$(call pip_config,extra-index-url))) \
	$(addprefix --find-links ,$(or $(PIP_FIND_LINKS),$(call pip_config,find-links)))
UV_INSTALL = $(BIN)/python -m uv pip install --python $(BIN)/python --compile-bytecode --index-strategy unsafe-best-match \
	$(UV_INDEXES) $(if $(TORCH),--torch-backend $(TORCH))

.PHONY: setup lab test test-units test-notebooks test-chinese test-site test-python test-fast learner site times doctor
# `make setup PYTHON=python3.13` on a venv of another Python makes the venv anew.
setup:
	@if [ "$(origin PYTHON)" = "command line" ] && [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c "$(PY_VERSION)")" != "$$($(PYTHON_EXE) -c "$(PY_VERSION)")" ]; then \
		echo "$(VENV) runs another Python than $(PYTHON): making it anew"; rm -rf $(VENV); fi
	@$(MAKE) --no-print-directory $(READY)
PY_VERSION := import sys; print(*sys.version_info[:2])

# configurable-http-proxy (npm), for the browser test that runs notebook 05 through a real
# JupyterHub, goes into the venv too; without npm that one test skips (CI installs nodejs).
CHP_VERSION = 5
$(READY): pyproject.toml
	test -x $(BIN)/python || $(PYTHON_EXE) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade uv
	$(UV_INSTALL) -e ".[test]"
	if command -v npm >/dev/null; then npm install --silent --no-fund --no-audit --prefix $(VENV)/node \
		configurable-http-proxy@$(CHP_VERSION); else echo "no npm: the JupyterHub browser test will skip"; fi
	touch $@

# JupyterLab on notebooks/: says which model the notebooks will use first; as root it adds
# --allow-root, without a browser or display it prints how to reach the server over SSH.
lab: $(READY)
	$(BIN)/python -m captum_course lab

# `make test` is four parts, each a target of its own (CI runs them in two lanes, .ci/run):
#   test-units      the unit, browser and load tests, and notebooks 06's and 07's checked runs
#   test-notebooks  every notebook on the ResNet18 code path (a ResNet18 checkpoint with random
#                   weights), solutions included
#   test-chinese    the Chinese edition, every notebook in full, as a machine without internet
#                   runs it (the offline fallback model, real weights), failing on English in
#                   what it prints or plots (tests/run_chinese_edition.py). Its code cells are
#                   the English program, strings and comments in Chinese
#                   (tests/test_translations.py); the learner
#                   copies are these notebooks less their solution cells, and no other cell uses
#                   what a solution defines (tests/test_handouts.py).
#   test-site       the website (tests/run_site.py): every English notebook offline, built with
#                   warnings as errors, then checked in Chromium. The offline runs of the parts
#                   before (notebooks 06's and 07's checked runs, the Chinese edition) are kept in
#                   build/runs/ ($CAPTUM_COURSE_RUNS) and not run again.
NBVAL = -m pytest --nbval-lax
UNIT_ARGS ?=
RUNS = CAPTUM_COURSE_RUNS=$(CURDIR)/build/runs
test: test-units test-notebooks test-chinese test-site
test-units: $(READY)
	$(RUNS) $(BIN)/python -m pytest tests $(UNIT_ARGS) --durations=15
test-notebooks: $(READY)
	$(BIN)/python $(NBVAL) --notebook-model=resnet18-random notebooks --ignore=notebooks/zh-CN
test-chinese: $(READY)
	$(RUNS) $(BIN)/python -m pytest tests/run_chinese_edition.py --durations=10
test-site: $(READY)
	$(RUNS) $(BIN)/python -m pytest tests/run_site.py --durations=10

# The unit tests on another Python, in its own venv, and the notebooks (offline) there; the
# browser, class and notebook-06 and -07 runs, and the tests marked `once` (processes the course starts:
# the command-line explorer, make lab, the benchmarks), are once, in make test:
#   make test-python PYTHON=python3.10
# CI moves notebooks 06's and 07's checked runs to Python 3.10 (SLOW_TESTS without them) and runs no English notebooks on 3.13 (NOTEBOOKS=),
# where test-chinese runs instead.
# The fast loop while changing code: make test-fast (the unit tests less those runs).
SLOW_TESTS = --ignore=tests/test_insights_browser.py --ignore=tests/test_class_load.py \
	--ignore=tests/test_notebook_06.py --ignore=tests/test_notebook_07.py
NOTEBOOKS = notebooks --ignore=notebooks/zh-CN
test-python:
	$(MAKE) setup VENV=.venv-$(notdir $(PYTHON)) PYTHON=$(PYTHON)
	$(RUNS) .venv-$(notdir $(PYTHON))/bin/python -m pytest tests $(SLOW_TESTS) -m "not once" --durations=15
	$(if $(strip $(NOTEBOOKS)),.venv-$(notdir $(PYTHON))/bin/python $(NBVAL) --notebook-model=offline $(NOTEBOOKS))

test-fast: $(READY)
	$(BIN)/python -m pytest tests $(SLOW_TESTS) -q

# Instructors: learner copies without solutions (learner/, learner/zh-CN/), the course website
# (site/, site/zh-CN/: docs/site.md; REPOSITORY, BRANCH, JUPYTERHUB_URL and BINDERHUB_URL set
# where its launch buttons lead), the run time of each notebook for the agenda, and a readiness
# check for the day.
learner: $(READY)
	$(BIN)/python -m captum_course learner --out learner

JOBS ?= 2
SITE_SETTINGS = $(foreach s,REPOSITORY BRANCH JUPYTERHUB_URL BINDERHUB_URL,$(if $($(s)),--$(subst _,-,$(shell echo $(s) | tr A-Z a-z)) $($(s))))
site: $(READY)
	$(BIN)/python -m captum_course site --out site --jobs $(JOBS) $(SITE_SETTINGS)

times: $(READY)
	$(BIN)/python bench/notebook_times.py

doctor: $(READY)
	$(BIN)/python -m captum_course doctor
