# Quick start:  make lab   (set up, then open JupyterLab on notebooks/)
#               make test  (set up, then run every test)
# Both are safe to run again: set-up reruns only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready

.PHONY: setup lab test
setup: $(READY)

$(READY): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

lab: $(READY)
	$(BIN)/jupyter lab notebooks/

# Unit tests, then every notebook twice: as a machine without internet runs it
# (offline fallback model, real weights) and on the ResNet18 code path.
test: $(READY)
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval-lax --notebook-model=offline notebooks
	$(BIN)/python -m pytest --nbval-lax --notebook-model=resnet18-random notebooks
