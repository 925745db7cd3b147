# Quick start:  make lab   (set up, then open JupyterLab on notebooks/)
#               make test  (set up, then run every test)
# Both are safe to run again: set-up reruns only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready

.PHONY: setup lab test learner handouts times doctor
setup: $(READY)

$(READY): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

lab: $(READY)
	$(BIN)/jupyter lab notebooks/

# Unit tests, then every notebook twice: as a machine without internet runs it
# (offline fallback model, real weights) and on the ResNet18 code path; then the
# learner copies (solutions removed) offline.
test: $(READY)
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval-lax --notebook-model=offline notebooks
	$(BIN)/python -m pytest --nbval-lax --notebook-model=resnet18-random notebooks
	$(BIN)/python -m captum_helpers learner --out learner
	$(BIN)/python -m pytest --nbval-lax --notebook-model=offline learner

# Instructors: learner copies without solutions (learner/), executed HTML handouts (site/),
# the run time of each notebook for the agenda, and a readiness check for the day.
learner: $(READY)
	$(BIN)/python -m captum_helpers learner --out learner

handouts: $(READY)
	$(BIN)/python -m captum_helpers handouts --out site

times: $(READY)
	$(BIN)/python bench/notebook_times.py

doctor: $(READY)
	$(BIN)/python -m captum_helpers doctor
