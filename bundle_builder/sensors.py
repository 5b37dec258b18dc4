"""Deterministic synthetic sensor history of one ESP (electrical submersible pump) well.

Real wells are not available to a developer laptop or CI, yet bundles must be trained on data
that looks like a pump's: seven sensors sampled hourly, a few failure modes, each announced by
its own drift in the sensors days before the pump fails. Everything derives from the well id
and the seed, so the same inputs always give the same bytes (and therefore the same bundle).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SENSOR_NAMES: tuple[str, ...] = (
    "intake_pressure_bar",
    "discharge_pressure_bar",
    "motor_temperature_c",
    "motor_current_a",
    "vibration_mm_s",
    "frequency_hz",
    "flow_m3_d",
)

FAILURE_MODES: tuple[str, ...] = (
    "motor_overheat",
    "pump_wear",
    "gas_lock",
    "electrical_fault",
    "sand_ingress",
)

HOURS_PER_DAY = 24
# How a failure announces itself: per-sensor drift (in units of that sensor's noise) reached
# at the moment of failure, ramping up over PRECURSOR_DAYS. Indices follow SENSOR_NAMES.
_SIGNATURES: dict[str, tuple[float, ...]] = {
    "motor_overheat": (0.0, 0.0, 6.0, 1.5, 0.5, 0.0, -0.5),
    "pump_wear": (0.0, -3.0, 1.0, 1.0, 4.0, 0.0, -3.0),
    "gas_lock": (-3.0, -2.0, 2.0, -3.0, 1.0, 0.0, -5.0),
    "electrical_fault": (0.0, 0.0, 1.5, 5.0, 0.5, -2.0, 0.0),
    "sand_ingress": (2.0, 1.0, 0.5, 2.0, 5.0, 0.0, -1.5),
}
_BASELINE = np.array([85.0, 190.0, 95.0, 42.0, 2.5, 55.0, 450.0])
_NOISE = np.array([2.0, 4.0, 1.5, 1.2, 0.3, 0.6, 12.0])
PRECURSOR_DAYS = 12


@dataclass(frozen=True)
class SensorHistory:
    """Hourly sensor rows and, per failure mode, the hour index of each failure."""

    well: str
    features: npt.NDArray[np.float32]  # shape (hours, len(SENSOR_NAMES))
    failures: dict[str, tuple[int, ...]]

    def labels(self, failure_mode: str, horizon_days: int) -> npt.NDArray[np.int64]:
        """1 where a failure of `failure_mode` happens within the next `horizon_days` days."""
        hours = self.features.shape[0]
        labels = np.zeros(hours, dtype=np.int64)
        horizon = horizon_days * HOURS_PER_DAY
        for failure_hour in self.failures[failure_mode]:
            labels[max(0, failure_hour - horizon) : failure_hour] = 1
        return labels

    def sha256(self) -> str:
        """Digest of the training data, recorded in the bundle's provenance."""
        digest = hashlib.sha256(self.features.tobytes())
        for mode in FAILURE_MODES:
            digest.update(mode.encode())
            digest.update(np.asarray(self.failures[mode], dtype=np.int64).tobytes())
        return digest.hexdigest()


def well_seed(well: str, seed: int) -> int:
    """A stable 63-bit seed from the well id and the user's seed (hash() is salted per process)."""
    raw = hashlib.sha256(f"{well}\0{seed}".encode()).digest()
    return int.from_bytes(raw[:8], "big") >> 1


def generate_history(
    well: str, seed: int, days: int = 300, failures_per_mode: int = 4
) -> SensorHistory:
    """Simulate `days` of hourly readings with `failures_per_mode` failures of every mode."""
    rng = np.random.default_rng(well_seed(well, seed))
    hours = days * HOURS_PER_DAY
    # A well-specific operating point, then slow daily cycles plus noise.
    baseline = _BASELINE * rng.uniform(0.9, 1.1, size=_BASELINE.shape)
    t = np.arange(hours)[:, None]
    daily = np.sin(2 * np.pi * t / HOURS_PER_DAY + rng.uniform(0, 2 * np.pi, size=_BASELINE.shape))
    features = (
        baseline + 0.5 * _NOISE * daily + _NOISE * rng.standard_normal((hours, _BASELINE.size))
    )

    precursor = PRECURSOR_DAYS * HOURS_PER_DAY
    # Failures never overlap: each takes its own slot on a shuffled grid of the history.
    slots = hours // (precursor + HOURS_PER_DAY)
    n_events = len(FAILURE_MODES) * failures_per_mode
    if n_events > slots:
        raise ValueError(f"{days} days cannot hold {n_events} non-overlapping failures")
    chosen = rng.permutation(slots)[:n_events]
    failures: dict[str, list[int]] = {mode: [] for mode in FAILURE_MODES}
    for event, slot in enumerate(chosen):
        mode = FAILURE_MODES[event % len(FAILURE_MODES)]
        failure_hour = int(slot) * (precursor + HOURS_PER_DAY) + precursor
        ramp = np.linspace(0.0, 1.0, precursor) ** 2
        signature = np.asarray(_SIGNATURES[mode]) * _NOISE
        features[failure_hour - precursor : failure_hour] += ramp[:, None] * signature
        failures[mode].append(failure_hour)
    return SensorHistory(
        well=well,
        features=features.astype(np.float32),
        failures={mode: tuple(sorted(hours_)) for mode, hours_ in failures.items()},
    )
