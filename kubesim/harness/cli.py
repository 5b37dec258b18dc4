"""``python -m kubesim serve``: run kubesim until SIGTERM/SIGINT.

Why this exists: the demo and developers run kubesim as a process and point kubectl at the
kubeconfig it writes. Parsing happens in ``main`` only (never at import). The kubelet's
container runtimes come from ``--container-runtime`` and, unless ``--no-installed-runtimes``,
from what installed packages register under the ``kubesim.container_runtimes`` entry-point
group (as pytest finds its plugins), so kubesim names no runtime it does not ship.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import signal
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Final

from kubesim.harness.cluster import KubeSim
from kubesim.http.faults import FaultConfig, parse_fault_rule
from kubesim.node.kubelet import KubeletConfig
from kubesim.node.runtime import ContainerRuntimeFactory

__all__ = ["ENTRY_POINT_GROUP", "installed_factories", "load_factory", "main"]

#: Packages register container runtimes for ``kubesim serve`` here: ``name = "module:factory"``.
ENTRY_POINT_GROUP: Final = "kubesim.container_runtimes"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kubesim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Kubernetes API on loopback")
    serve.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument(
        "--kubeconfig", type=Path, required=True, help="where to write the kubeconfig"
    )
    serve.add_argument(
        "--kubelet",
        default="instant",
        help="kubelet profile: instant | delay=1.5,jitter=0.5,failure_rate=0.1,crash_loop=SELECTOR,"
        "refresh=SECONDS | none (no kubelet)",
    )
    serve.add_argument(
        "--run-selector", default="", help="label selector of pods to run as real processes"
    )
    serve.add_argument(
        "--container-runtime",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="a container-runtime plugin for the kubelet, repeatable: FACTORY() returns a "
        "kubesim.node.runtime.ContainerRuntime; asked in order, after the process runtime and "
        f"before the installed ones ({ENTRY_POINT_GROUP} entry points) and the stub runtime",
    )
    serve.add_argument(
        "--no-installed-runtimes",
        action="store_true",
        help=f"ignore the container runtimes installed packages register ({ENTRY_POINT_GROUP})",
    )
    serve.add_argument(
        "--annotation-refresh-delay",
        type=float,
        default=None,
        help="seconds before downward-API files change",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        help="fault rule, repeatable: kind=latency|error|throttle|conflict|drop-watch|gone,"
        "verb=...,resource=...,probability=...,latency=...,retry_after=...,drop_after=...,times=...",
    )
    serve.add_argument(
        "--watch-history",
        type=int,
        default=50_000,
        help="events kept per resource for watches to resume from (older: 410 Expired)",
    )
    serve.add_argument("--log-level", default="INFO", help="DEBUG logs one line per request")
    return parser


def load_factory(spec: str) -> ContainerRuntimeFactory:
    """``package.module:name`` -> the callable it names (a plugin's import path, as uvicorn's)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--container-runtime {spec!r} is not MODULE:FACTORY")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"--container-runtime {spec!r}: cannot import {module_name}: {exc}"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"--container-runtime {spec!r}: {module_name} has no callable {attr!r}")
    loaded: ContainerRuntimeFactory = factory
    return loaded


def installed_factories() -> list[ContainerRuntimeFactory]:
    """The container runtimes installed packages register, by entry-point name."""
    factories: list[ContainerRuntimeFactory] = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        try:
            factory = point.load()
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"container runtime {point.name!r} ({point.value}, entry point group "
                f"{ENTRY_POINT_GROUP}) cannot be loaded: {exc}; --no-installed-runtimes skips it"
            ) from None
        if not callable(factory):
            raise ValueError(f"container runtime {point.name!r} ({point.value}) is not callable")
        factories.append(factory)
    return factories


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_kubelet = args.kubelet != "none"
    try:
        kubelet = KubeletConfig.parse("" if args.kubelet == "none" else args.kubelet)
        faults = FaultConfig([parse_fault_rule(text) for text in args.fault])
        runtimes = [load_factory(spec) for spec in args.container_runtime]
        if not args.no_installed_runtimes:
            # One runtime instance per factory: one named on the command line and installed too
            # is asked once.
            runtimes += [f for f in installed_factories() if f not in runtimes]
    except ValueError as exc:
        print(f"kubesim: {exc}", file=sys.stderr)
        return 2
    if args.run_selector:
        kubelet.run_selector = args.run_selector
    if args.annotation_refresh_delay is not None:
        kubelet.annotation_refresh_delay = args.annotation_refresh_delay
    sim = KubeSim(
        host=args.host,
        port=args.port,
        kubeconfig=args.kubeconfig,
        kubelet=kubelet,
        run_kubelet=run_kubelet,
        container_runtimes=runtimes,
        faults=faults,
        history_size=args.watch_history,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await sim.start()
        logging.getLogger("kubesim").info(
            "kubesim serving %s (kubeconfig %s)", sim.url, args.kubeconfig
        )
        try:
            await stop.wait()
        finally:
            await sim.stop()

    # The store holds every object as a decoded JSON tree (no reference cycles) plus a watch
    # history: with the default thresholds the cyclic collector's full passes over that heap took
    # 4.5 of kubesim's 15 CPU seconds while 10,000 pods came up (3.4 s in 16 full passes).
    # Collecting young objects less often and old ones almost never leaves 0.8 s.
    gc.set_threshold(50_000, 20, 100)
    asyncio.run(run())
    return 0
