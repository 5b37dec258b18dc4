# Every target installs what it needs into .venv first (idempotent: only when pyproject.toml changed).
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test lint generate kubectl
install: $(STAMP) kubectl

# The pinned kubectl (the apiserver's version, built from Go modules into ~/.cache/modelfleet/k8s
# when missing: minutes cold, a hash check warm); the demo's steps and the tests run it, never the
# machine's own.
kubectl: $(STAMP)
	$(VENV)/bin/python -m modelfleet_dev.real_cluster build kubectl

demo: $(STAMP) kubectl
	$(VENV)/bin/modelfleet demo

test: $(STAMP) kubectl prometheus
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Prometheus, promtool and promql-selectors (issue 15; modelfleet_dev/prometheus_server.py), built
# from the Go module in cluster/go/prometheus into ~/.cache/modelfleet/prometheus/<version> when
# missing (cold: ~10 CPU-minutes, see docs/monitoring.md; warm: a hash check). The monitoring
# tests need them.
.PHONY: prometheus
prometheus: $(STAMP)
	$(VENV)/bin/python -m modelfleet_dev.prometheus_server install

# Everything generated from the ModelDeployment models: the CRD (and the chart's copy), the
# field reference, the chart's values schema. Tests fail when any of them drifts.
generate: $(STAMP)
	$(VENV)/bin/modelfleet crd --reference docs/reference.md
	cp crds/modeldeployment.yaml charts/modelfleet/crds/modeldeployment.yaml
	$(VENV)/bin/python charts/modelfleet/schema/values_schema.py

# --- Real cluster (issue 12; cluster/README.md): kube-apiserver, etcd, kube-controller-manager,
# kube-scheduler, kubectl and kwok built from Go modules into ~/.cache/modelfleet/k8s. ---
.PHONY: real-cluster test-real
KUBECONFIG_OUT ?= $(HOME)/.cache/modelfleet/k8s/kubeconfig
REAL_PYTEST_ARGS ?= -x -q

# Builds what is missing, starts a cluster, writes its kubeconfig to KUBECONFIG_OUT and stays in
# the foreground until SIGINT/SIGTERM (then tears everything down).
real-cluster: $(STAMP)
	$(VENV)/bin/python -m modelfleet_dev.real_cluster up --kubeconfig-out $(KUBECONFIG_OUT)

# The harness's own tests (each starts its clusters: helm install included), then on one fresh
# cluster the kubesim conformance tests (the same tests pass on kubesim), then the e2e suite.
test-real: $(STAMP) prometheus
	$(VENV)/bin/python -m modelfleet_dev.real_cluster build
	$(VENV)/bin/python -m pytest tests/real_cluster $(REAL_PYTEST_ARGS)
	$(VENV)/bin/python -m modelfleet_dev.real_cluster test -- tests/kubesim/conformance tests/e2e $(REAL_PYTEST_ARGS)
