"""The runtime's settings: every `model-runtime serve` flag, and its environment variable.

One field per setting, with its default and a description; the flags are derived from the
fields (`settings_flags`), so a flag, its environment variable (MODELFLEET_RUNTIME_<FIELD>, e.g.
MODELFLEET_RUNTIME_PORT) and its --help cannot disagree. A flag beats the environment, which
beats the default. The operator's pod template passes --host, --port and --annotations-file.

A frozen dataclass read by `settings_flags.load_settings`, not a pydantic-settings class as
issue 11 chose: issue 16 took pydantic out of the serving process (pydantic, pydantic-settings
and the classes on them were 13.5 MiB of every well pod's RSS; docs/architecture.md,
docs/benchmarks.md "Memory per well pod"). The operator keeps pydantic-settings; `settings_flags` reads both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

from model_runtime.monitoring.config import (
    DEFAULT_MAX_ROWS_PER_SECOND,
    DEFAULT_MIN_ROWS,
    DEFAULT_WINDOW_ROWS,
    MonitoringConfig,
)
from runtime_contract.monitoring import ThresholdSource
from settings_flags import Flag, setting

#: The threshold sources a runtime may be told to use (a bundle's own beat both).
RUNTIME_THRESHOLDS = (ThresholdSource.CONVENTION.value, ThresholdSource.CALIBRATED.value)

ENV_PREFIX = "MODELFLEET_RUNTIME_"


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """How one well's inference server runs: which bundle, where it listens, how it reloads."""

    env_prefix: ClassVar[str] = ENV_PREFIX

    bundle: str | None = setting(
        None, "Bundle URI: file://, http(s)://, or a path (directory or .tar.gz)."
    )
    host: str = setting("127.0.0.1", "Listen address.")
    port: int = setting(8080, "Listen port (0 picks a free one).")
    annotations_file: Path | None = setting(
        None,
        "Downward-API file of metadata.annotations; modelfleet.dev/bundle-uri and "
        "modelfleet.dev/bundle-digest in it override --bundle, and a change triggers a hot swap.",
    )
    ready_requires_annotated_bundle: bool = setting(
        False,
        "Pass /v2/health/ready only while serving the URI and digest the annotations file (or "
        "--bundle) names now: during a hot swap, and after a load asked another way, the pod "
        "is not ready (the operator's bundleConfirmation: ReadinessProbe).",
    )
    poll_interval: float = setting(2.0, "Annotations file poll period, seconds.")
    retry_interval: float = setting(
        5.0, "Retry period while an unreachable first bundle is not loaded, seconds."
    )
    drain_timeout: float = setting(25.0, "Max seconds to drain in-flight requests on SIGTERM.")
    max_body_bytes: int = setting(8 * 1024 * 1024, "Largest accepted request body, bytes.")
    log_level: str = setting("INFO", "Logging level.")
    metrics_per_model: bool = setting(
        False,
        "Label request metrics by model name (17 series per model and status code; default: one "
        "`_models` label for every model's /infer, `_well` for the whole-well endpoint).",
    )
    monitoring_window_rows: int = setting(
        DEFAULT_WINDOW_ROWS,
        "Rows per model in the drift-monitoring window (constant memory); 0 turns monitoring off.",
    )
    monitoring_min_rows: int = setting(
        DEFAULT_MIN_ROWS,
        "Fewer rows than this in a model's window: insufficient data, no drift verdict.",
    )
    monitoring_thresholds: Annotated[str, Flag(choices=RUNTIME_THRESHOLDS)] = setting(
        ThresholdSource.CONVENTION.value,
        "PSI thresholds: convention (0.1 / 0.25) or calibrated (from the reference, at load); "
        "a bundle's own drift_thresholds beat both.",
    )
    monitoring_detail: bool = setting(
        False,
        "Export per-model and per-feature monitoring series (small fleets; default: ~10 per pod).",
    )
    monitoring_max_rows_per_second: float = setting(
        DEFAULT_MAX_ROWS_PER_SECOND,
        "Rows a second, on average, that enter a model's drift windows (per model's /infer, per "
        "whole-well model list); requests above it are sampled whole. 0: every row.",
    )

    def __post_init__(self) -> None:
        # The flag and the environment check the Flag's choices; this is for direct construction.
        if self.monitoring_thresholds not in RUNTIME_THRESHOLDS:
            raise ValueError(
                f"monitoring_thresholds must be one of {list(RUNTIME_THRESHOLDS)}, "
                f"got {self.monitoring_thresholds!r}"
            )

    def monitoring(self) -> MonitoringConfig:
        return MonitoringConfig(
            window_rows=self.monitoring_window_rows,
            min_rows=self.monitoring_min_rows,
            thresholds=ThresholdSource(self.monitoring_thresholds),
            detail=self.monitoring_detail,
            max_rows_per_second=self.monitoring_max_rows_per_second,
        )
