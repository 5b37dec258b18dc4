"""The runtime's settings: every `model-runtime serve` flag, and its environment variable.

One field per setting, with its default and a docstring; the flags are derived from the fields
(`settings_flags`), so a flag, its environment variable (MODELFLEET_RUNTIME_<FIELD>, e.g.
MODELFLEET_RUNTIME_PORT) and its --help cannot disagree. A flag beats the environment, which
beats the default. The operator's pod template passes --host, --port and --annotations-file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_runtime.monitoring.config import (
    DEFAULT_MIN_ROWS,
    DEFAULT_WINDOW_ROWS,
    MonitoringConfig,
)
from runtime_contract.monitoring import ThresholdSource

_RUNTIME_THRESHOLDS = (ThresholdSource.CONVENTION.value, ThresholdSource.CALIBRATED.value)

ENV_PREFIX = "MODELFLEET_RUNTIME_"


class RuntimeSettings(BaseSettings):
    """How one well's inference server runs: which bundle, where it listens, how it reloads."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, use_attribute_docstrings=True, frozen=True, extra="forbid"
    )

    bundle: str | None = None
    """Bundle URI: file://, http(s)://, or a path (directory or .tar.gz)."""

    host: str = "127.0.0.1"
    """Listen address."""

    port: int = 8080
    """Listen port (0 picks a free one)."""

    annotations_file: Path | None = None
    """Downward-API file of metadata.annotations; modelfleet.dev/bundle-uri and
    modelfleet.dev/bundle-digest in it override --bundle, and a change triggers a hot swap."""

    poll_interval: float = 2.0
    """Annotations file poll period, seconds."""

    retry_interval: float = 5.0
    """Retry period while an unreachable first bundle is not loaded, seconds."""

    drain_timeout: float = 25.0
    """Max seconds to drain in-flight requests on SIGTERM."""

    max_body_bytes: int = 8 * 1024 * 1024
    """Largest accepted request body, bytes."""

    log_level: str = "INFO"
    """Logging level."""

    metrics_per_model: bool = False
    """Label request metrics by model name (19 series per model and status code; default: one
    `_models` label for every model's /infer, `_well` for the whole-well endpoint)."""

    monitoring_window_rows: int = DEFAULT_WINDOW_ROWS
    """Rows per model in the drift-monitoring window (constant memory); 0 turns monitoring off."""

    monitoring_min_rows: int = DEFAULT_MIN_ROWS
    """Fewer rows than this in a model's window: insufficient data, no drift verdict."""

    monitoring_thresholds: str = ThresholdSource.CONVENTION.value
    """PSI thresholds: convention (0.1 / 0.25) or calibrated (from the reference, at load);
    a bundle's own drift_thresholds beat both."""

    monitoring_detail: bool = False
    """Export per-model and per-feature monitoring series (small fleets; default: ~10 per pod)."""

    @field_validator("monitoring_thresholds")
    @classmethod
    def _known_thresholds(cls, value: str) -> str:
        if value not in _RUNTIME_THRESHOLDS:
            raise ValueError(f"must be one of {list(_RUNTIME_THRESHOLDS)}, got {value!r}")
        return value

    def monitoring(self) -> MonitoringConfig:
        return MonitoringConfig(
            window_rows=self.monitoring_window_rows,
            min_rows=self.monitoring_min_rows,
            thresholds=ThresholdSource(self.monitoring_thresholds),
            detail=self.monitoring_detail,
        )
