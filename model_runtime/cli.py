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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("model_runtime")


@dataclass(frozen=True)
class ServeConfig:
    bundle: str | None
    host: str = "127.0.0.1"
    port: int = 8080
    annotations_file: Path | None = None
    poll_interval: float = 2.0
    retry_interval: float = 5.0
    drain_timeout: float = 25.0
    max_body_bytes: int = 8 * 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-runtime", description="per-well ONNX inference server (OIP V2)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="serve a verified bundle over the Open Inference Protocol V2"
    )
    serve.add_argument(
        "--bundle", help="bundle URI: file://, http(s)://, or a path (directory or .tar.gz)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=8080, help="listen port (default 8080; 0 picks a free one)"
    )
    serve.add_argument(
        "--annotations-file",
        type=Path,
        help="downward-API file of metadata.annotations; modelfleet.dev/bundle-uri and "
        "modelfleet.dev/bundle-digest in it override --bundle, and a change triggers a hot swap",
    )
    serve.add_argument(
        "--poll-interval",
        type=float,
        default=2.0,
        help="annotations file poll period, s (default 2)",
    )
    serve.add_argument(
        "--retry-interval",
        type=float,
        default=5.0,
        help="retry period while an unreachable first bundle is not loaded, s",
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        default=25.0,
        help="max seconds to drain in-flight requests on SIGTERM",
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=8 * 1024 * 1024, help="largest accepted request body"
    )
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


async def serve(config: ServeConfig) -> int:
    from aiohttp import web

    from model_runtime.bundle_state import BundleState
    from model_runtime.dataplane import RequestLimits
    from model_runtime.hotswap import BundleWatcher
    from model_runtime.metrics import RuntimeMetrics
    from model_runtime.server import RuntimeServer

    metrics = RuntimeMetrics()
    state = BundleState(metrics)
    server = RuntimeServer(state, metrics, RequestLimits(max_body_bytes=config.max_body_bytes))
    runner = web.AppRunner(
        server.app(), access_log=None, handle_signals=False, shutdown_timeout=config.drain_timeout
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    await site.start()
    for address in runner.addresses:
        host, port = address[0], address[1]
        # One parseable line: tests and kubesim read the port when --port 0 was asked.
        print(f"model-runtime listening on http://{host}:{port}", file=sys.stderr, flush=True)

    watcher = BundleWatcher(
        state,
        bundle_uri=config.bundle,
        annotations_file=config.annotations_file,
        poll_interval=config.poll_interval,
        retry_interval=config.retry_interval,
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
    metrics.ready.set(0)
    await site.stop()
    deadline = time.monotonic() + config.drain_timeout
    while server.in_flight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    watch_task.cancel()
    await runner.cleanup()
    log.info("drained; exiting")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "serve":
        if not args.bundle and not args.annotations_file:
            print(
                "model-runtime serve: give --bundle URI or --annotations-file PATH", file=sys.stderr
            )
            return 2
        config = ServeConfig(
            bundle=args.bundle,
            host=args.host,
            port=args.port,
            annotations_file=args.annotations_file,
            poll_interval=args.poll_interval,
            retry_interval=args.retry_interval,
            drain_timeout=args.drain_timeout,
            max_body_bytes=args.max_body_bytes,
        )
        return asyncio.run(serve(config))
    raise AssertionError(f"unhandled command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
