"""The operator's settings: every `modelfleet operator` flag, and its environment variable.

One field per setting, with its default and a docstring; the flags are derived from the fields
(`settings_flags`), so a flag, its environment variable (MODELFLEET_OPERATOR_<FIELD>, e.g.
MODELFLEET_OPERATOR_QPS) and its --help cannot disagree. A flag beats the environment, which
beats the default. The chart's defaults (charts/modelfleet/values.yaml, `operator:`) are checked
against these by tests/chart/test_chart_render.py.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelfleet.io.kube import ClientSettings
from settings_flags import Flag

ENV_PREFIX = "MODELFLEET_OPERATOR_"


class OperatorSettings(BaseSettings):
    """How the operator runs: what it watches, how hard it may call the API, where it listens."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, use_attribute_docstrings=True, frozen=True, extra="forbid"
    )

    namespaces: Annotated[
        list[str], Flag("--namespace", "-n", group="scope", metavar="NAMESPACE")
    ] = Field(default_factory=list)
    """Namespace to watch (repeatable); default: the kubeconfig context's namespace."""

    all_namespaces: Annotated[bool, Flag("--all-namespaces", "-A", group="scope")] = False
    """Watch all namespaces."""

    kubeconfig: str | None = None
    """Kubeconfig file (default $KUBECONFIG or ~/.kube/config; in-cluster config inside a pod)."""

    context: str | None = None
    """Kubeconfig context."""

    qps: float = ClientSettings.qps
    """Client-side API request rate limit, requests per second (0: none)."""

    burst: int = ClientSettings.burst
    """Client-side burst above --qps."""

    concurrency: int = ClientSettings.concurrency
    """API requests in flight at most."""

    metrics_port: int | None = 9090
    """Prometheus /metrics port (-1 disables)."""

    liveness: str | None = "http://0.0.0.0:8080/healthz"
    """kopf liveness endpoint URL ('' disables)."""

    peering: Annotated[str | None, Flag("--peering", group="peering")] = None
    """kopf peering name: replicas elect one active operator."""

    standalone: Annotated[bool | None, Flag("--standalone", group="peering")] = None
    """No peering (one replica only)."""

    verbose: Annotated[bool, Flag("--verbose", "-v")] = False
    """Debug logs."""

    @field_validator("metrics_port")
    @classmethod
    def _negative_port_disables(cls, port: int | None) -> int | None:
        return None if port is not None and port < 0 else port

    @field_validator("liveness")
    @classmethod
    def _empty_url_disables(cls, url: str | None) -> str | None:
        return url or None

    def client_settings(self) -> ClientSettings:
        return ClientSettings(qps=self.qps, burst=self.burst, concurrency=self.concurrency)
