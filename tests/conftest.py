"""Shared pytest configuration: kubesim fixtures (`kubesim`, `kubesim_thread`)."""

pytest_plugins = ["kubesim.pytest_plugin"]
