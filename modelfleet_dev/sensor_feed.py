"""A sensor feed: synthetic rows per well, with injectable drift, sent to runtimes for a while.

Functional monitoring needs live traffic to watch. This feed draws each well's rows from the
generator its synthetic bundle was trained on (`bundle_builder.sensors.generate_history`, same
well id and seed, rows drawn at random so a window sees the reference's own distribution), and
can shift one sensor of one well by a number of that sensor's standard deviations, to make
drift happen on purpose. It sends to runtime endpoints on loopback or pod (private) addresses
only, at a bounded rate and for a bounded time: a test and demo tool, never a load generator
pointed at somebody else's server.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import numpy as np
import numpy.typing as npt

from bundle_builder.sensors import SENSOR_NAMES, generate_history
from bundle_builder.training import INPUT_NAME

MAX_ROWS_PER_SECOND = 2_000.0
MAX_DURATION_SECONDS = 3_600.0
WELL_INFER_PATH = "/v2/well/infer"


class FeedTargetError(ValueError):
    """A target the feed refuses: not loopback or a private (pod) address, or malformed."""


@dataclass(frozen=True)
class Drift:
    """Shift `sensor` of `well` by `shift_sd` of that sensor's standard deviation."""

    well: str
    sensor: str
    shift_sd: float

    def __post_init__(self) -> None:
        if self.sensor not in SENSOR_NAMES:
            raise ValueError(f"unknown sensor {self.sensor!r}; sensors: {', '.join(SENSOR_NAMES)}")

    @classmethod
    def parse(cls, text: str) -> Drift:
        """`WELL:SENSOR:SHIFT_SD`, e.g. `fr-0001:motor_temperature_c:5`."""
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"drift {text!r}: expected WELL:SENSOR:SHIFT_SD")
        try:
            shift = float(parts[2])
        except ValueError as exc:
            raise ValueError(f"drift {text!r}: SHIFT_SD must be a number") from exc
        return cls(parts[0], parts[1], shift)


@dataclass
class WellRows:
    """An endless, seeded stream of one well's sensor rows, drifts applied."""

    well: str
    seed: int = 0
    drifts: Sequence[Drift] = ()
    draw_seed: int = 1
    _history: npt.NDArray[np.float32] = field(init=False, repr=False)
    _offset: npt.NDArray[np.float32] = field(init=False, repr=False)
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._history = generate_history(self.well, self.seed).features
        spread = self._history.std(axis=0)
        self._offset = np.zeros(len(SENSOR_NAMES), dtype=np.float32)
        for drift in self.drifts:
            if drift.well == self.well:
                index = SENSOR_NAMES.index(drift.sensor)
                self._offset[index] += drift.shift_sd * spread[index]
        self._rng = np.random.default_rng([self.draw_seed, self.seed])

    def take(self, rows: int) -> npt.NDArray[np.float32]:
        picked = self._history[self._rng.integers(0, self._history.shape[0], rows)]
        return picked + self._offset


def check_target(url: str) -> str:
    """`url` if it names a loopback or private IP address (a pod IP) over http, else refuse."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or not host:
        raise FeedTargetError(f"target {url!r}: expected http://<ip>:<port>")
    if host == "localhost":
        return url.rstrip("/")
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise FeedTargetError(f"target {url!r}: give an IP address, not a host name") from exc
    if not (address.is_loopback or address.is_private):
        raise FeedTargetError(f"target {url!r}: only loopback or pod (private) addresses")
    return url.rstrip("/")


def infer_body(rows: npt.NDArray[np.float32]) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.ravel().tolist(),
            }
        ]
    }


@dataclass(frozen=True)
class FeedResult:
    rows_sent: dict[str, int]
    errors: dict[str, int]
    seconds: float


def _schedule(rate: float, duration: float, max_rows: int | None) -> Iterator[float]:
    """Send times (monotonic) of each row: `rate` per second, until `duration` or `max_rows`."""
    start = time.monotonic()
    sent = 0
    while max_rows is None or sent < max_rows:
        due = start + sent / rate
        if due - start >= duration:
            return
        yield due
        sent += 1


def run_feed(
    targets: Mapping[str, str],
    *,
    rate: float,
    duration: float,
    max_rows: int | None = None,
    batch: int = 1,
    seed: int = 0,
    drifts: Sequence[Drift] = (),
) -> FeedResult:
    """Send each well `rate` rows per second (in requests of `batch` rows) to its runtime's
    whole-well endpoint, for at most `duration` seconds or `max_rows` rows per well."""
    if not 0 < rate <= MAX_ROWS_PER_SECOND:
        raise ValueError(f"rate must be in (0, {MAX_ROWS_PER_SECOND}] rows/s, got {rate}")
    if not 0 < duration <= MAX_DURATION_SECONDS:
        raise ValueError(f"duration must be in (0, {MAX_DURATION_SECONDS}] s, got {duration}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1 row, got {batch}")
    urls = {well: check_target(url) for well, url in targets.items()}
    unknown = sorted({d.well for d in drifts} - set(urls))
    if unknown:
        raise ValueError(f"drift on well {unknown[0]!r}, which the feed has no target for")
    streams = {well: WellRows(well, seed, drifts) for well in urls}
    sent = dict.fromkeys(urls, 0)
    errors = dict.fromkeys(urls, 0)
    started = time.monotonic()
    requests = None if max_rows is None else -(-max_rows // batch)
    with httpx.Client(timeout=10.0) as client:
        for due in _schedule(rate / batch, duration, requests):
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # pacing a sender: the event is the clock itself
            for well, url in urls.items():
                rows = streams[well].take(batch)
                try:
                    answer = client.post(url + WELL_INFER_PATH, json=infer_body(rows))
                except httpx.HTTPError:
                    errors[well] += 1
                    continue
                if answer.status_code == 200:
                    sent[well] += batch
                else:
                    errors[well] += 1
    return FeedResult(rows_sent=sent, errors=errors, seconds=time.monotonic() - started)


def _target(text: str) -> tuple[str, str]:
    well, sep, url = text.partition("=")
    if not sep or not well or not url:
        raise argparse.ArgumentTypeError(f"target {text!r}: expected WELL=http://IP:PORT")
    return well, url


def _drift(text: str) -> Drift:
    try:
        return Drift.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modelfleet_dev.sensor_feed",
        description="send synthetic sensor rows (with injectable drift) to runtime wells "
        "on loopback or pod addresses, at a bounded rate for a bounded time",
    )
    parser.add_argument(
        "--target",
        type=_target,
        action="append",
        required=True,
        metavar="WELL=URL",
        help="a well and its runtime, e.g. fr-0001=http://127.0.0.1:8080 (repeatable)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help=f"rows per second per well (at most {MAX_ROWS_PER_SECOND:g}; default 10)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help=f"seconds to run (at most {MAX_DURATION_SECONDS:g}; default 60)",
    )
    parser.add_argument(
        "--max-rows", type=int, default=None, help="stop after this many rows per well"
    )
    parser.add_argument("--batch", type=int, default=1, help="rows per request (default 1)")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the seed the wells' bundles were built with (default 0)",
    )
    parser.add_argument(
        "--drift",
        type=_drift,
        action="append",
        default=[],
        metavar="WELL:SENSOR:SHIFT_SD",
        help="shift one sensor of one well by SHIFT_SD standard deviations (repeatable); "
        f"sensors: {', '.join(SENSOR_NAMES)}",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run_feed(
            dict(args.target),
            rate=args.rate,
            duration=args.duration,
            max_rows=args.max_rows,
            batch=args.batch,
            seed=args.seed,
            drifts=args.drift,
        )
    except ValueError as exc:  # FeedTargetError included
        print(f"sensor_feed: {exc}", file=sys.stderr)
        return 2
    for well in sorted(result.rows_sent):
        print(f"{well}: {result.rows_sent[well]} rows sent, {result.errors[well]} failed requests")
    print(f"{result.seconds:.1f}s")
    return 0 if not any(result.errors.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
