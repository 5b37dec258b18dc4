# Every target installs what it needs into .venv first (idempotent: only when pyproject.toml changed).
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test lint generate
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/modelfleet demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Everything generated from the ModelDeployment models: the CRD (and the chart's copy), the
# field reference, the chart's values schema. Tests fail when any of them drifts.
generate: $(STAMP)
	$(VENV)/bin/modelfleet crd --reference docs/reference.md
	cp crds/modeldeployment.yaml charts/modelfleet/crds/modeldeployment.yaml
	$(VENV)/bin/python charts/modelfleet/schema/values_schema.py
