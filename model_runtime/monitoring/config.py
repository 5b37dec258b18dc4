"""How the runtime monitors: window size, the minimum rows for a verdict, thresholds, detail."""

from __future__ import annotations

from dataclasses import dataclass

from runtime_contract.monitoring import ThresholdSource

DEFAULT_WINDOW_ROWS = 1000
# PSI's null value is about (buckets - 1) / rows: with the default 10 bins, 200 rows keep it
# near 0.05, well under the convention's 0.1, so a verdict below that would be noise.
DEFAULT_MIN_ROWS = 200


@dataclass(frozen=True)
class MonitoringConfig:
    window_rows: int = DEFAULT_WINDOW_ROWS
    """Rows per model in the sliding window; 0 turns monitoring off."""
    min_rows: int = DEFAULT_MIN_ROWS
    """Fewer rows than this in a window: INSUFFICIENT_DATA, never a verdict."""
    thresholds: ThresholdSource = ThresholdSource.CONVENTION
    """CONVENTION or CALIBRATED; a bundle's own thresholds (BUNDLE) always win."""
    detail: bool = False
    """Per-model and per-feature Prometheus series (small fleets only)."""

    def __post_init__(self) -> None:
        if self.window_rows < 0 or self.min_rows < 1:
            raise ValueError(
                f"window_rows must be >= 0 and min_rows >= 1, got {self.window_rows}, {self.min_rows}"
            )
        if self.thresholds is ThresholdSource.BUNDLE:
            raise ValueError("thresholds come from the bundle only when its manifest sets them")

    @property
    def enabled(self) -> bool:
        return self.window_rows > 0

    @property
    def verdict_rows(self) -> int:
        """Rows needed for a verdict: min_rows, or the whole window if that is smaller."""
        return min(self.min_rows, self.window_rows)


MONITORING_OFF = MonitoringConfig(window_rows=0)
