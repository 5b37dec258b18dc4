"""Shared pytest configuration: kubesim fixtures (`kubesim`, `kubesim_thread`)."""

pytest_plugins = ["kubesim.harness.pytest_plugin"]
