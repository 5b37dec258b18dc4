"""How the runtime monitors: window size, the minimum rows for a verdict, thresholds, detail."""

from __future__ import annotations

from dataclasses import dataclass

from runtime_contract.monitoring import ThresholdSource

DEFAULT_WINDOW_ROWS = 1000
# PSI's null value is about (buckets - 1) / rows: with the default 10 bins, 200 rows keep it
# near 0.05, well under the convention's 0.1, so a verdict below that would be noise.
DEFAULT_MIN_ROWS = 200
# A well's feed sends a row a second or so (the demo's, 100); a load test, thousands. Above
# this, requests are sampled: a binned one-row whole-well request costs ~40 us (100 models),
# so 250 a second are ~1% of a core, and a 1,000-row window spans at least 4 s of traffic.
DEFAULT_MAX_ROWS_PER_SECOND = 250.0


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
    max_rows_per_second: float = 0.0
    """Rows a second, on average, that enter a model's windows from its /infer, and the
    whole-well endpoint's per model list (sampling.py); 0: every row. `serve` defaults to
    DEFAULT_MAX_ROWS_PER_SECOND."""

    def __post_init__(self) -> None:
        if self.window_rows < 0 or self.min_rows < 1:
            raise ValueError(
                f"window_rows must be >= 0 and min_rows >= 1, got {self.window_rows}, {self.min_rows}"
            )
        if not self.max_rows_per_second >= 0:  # NaN too
            raise ValueError(f"max_rows_per_second must be >= 0, got {self.max_rows_per_second}")
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
