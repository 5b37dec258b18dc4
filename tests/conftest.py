"""Shared pytest configuration: kubesim fixtures (`kubesim`, `kubesim_thread`) and a real
Prometheus (`prometheus_install`, `start_prometheus`)."""

pytest_plugins = ["kubesim.harness.pytest_plugin", "modelfleet_dev.prometheus_pytest"]
