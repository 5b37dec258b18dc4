"""`model-runtime serve`: run one well's inference server until SIGTERM.

The process listens at once (liveness), becomes ready only after a verified load, reloads on a
changed annotations file or SIGHUP, and on SIGTERM stops accepting, drains in-flight requests
and exits 0, as a Kubernetes pod should.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from model_runtime.settings import RuntimeSettings
from settings_flags import SettingsError, add_settings_arguments, settings_from_args

log = logging.getLogger("model_runtime")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-runtime", description="per-well ONNX inference server (OIP V2)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="serve a verified bundle over the Open Inference Protocol V2"
    )
    add_settings_arguments(serve, RuntimeSettings)
    return parser


async def serve(settings: RuntimeSettings) -> int:
    from model_runtime.bundle_state import BundleState
    from model_runtime.dataplane import RequestLimits
    from model_runtime.hotswap import BundleWatcher
    from model_runtime.metrics import RuntimeMetrics
    from model_runtime.server import RuntimeServer

    metrics = RuntimeMetrics(per_model_labels=settings.metrics_per_model)
    state = BundleState(
        metrics,
        monitoring=settings.monitoring(),
        ready_requires_wanted=settings.ready_requires_annotated_bundle,
    )
    server = RuntimeServer(
        state,
        metrics,
        RequestLimits(max_body_bytes=settings.max_body_bytes),
    )
    for host, port in await server.start(settings.host, settings.port):
        # One parseable line: tests and kubesim read the port when --port 0 was asked.
        print(f"model-runtime listening on http://{host}:{port}", file=sys.stderr, flush=True)

    watcher = BundleWatcher(
        state,
        bundle_uri=settings.bundle,
        annotations_file=settings.annotations_file,
        poll_interval=settings.poll_interval,
        retry_interval=settings.retry_interval,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, watcher.request_reload)
    watch_task = asyncio.create_task(watcher.run())
    await stop.wait()

    log.info(
        "SIGTERM: not ready, closing the listener, draining %d in-flight request(s)",
        server.in_flight,
    )
    state.draining = True
    metrics.ready = False
    server.http.stop_listening()
    deadline = time.monotonic() + settings.drain_timeout
    while server.in_flight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    watch_task.cancel()
    await server.http.close()
    log.info("drained; exiting")
    return 0


def run_event_loop(main_coroutine: Coroutine[Any, Any, int]) -> int:
    """uvloop when installed (the runtime extra holds it): its transports cut the per-request
    cost of socket writes and callbacks (docs/benchmarks.md, Runtime); asyncio's loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main_coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()  # the flags' defaults come from the environment
    except SettingsError as exc:
        print(f"model-runtime: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            settings = settings_from_args(RuntimeSettings, args)
        except ValueError as exc:  # a value the field's own check refuses (the message names it)
            print(f"model-runtime serve: {exc}", file=sys.stderr)
            return 2
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        if not settings.bundle and not settings.annotations_file:
            print(
                "model-runtime serve: give --bundle URI or --annotations-file PATH", file=sys.stderr
            )
            return 2
        return run_event_loop(serve(settings))
    raise AssertionError(f"unhandled command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
