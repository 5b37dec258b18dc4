"""`modelfleet operator`: run the operator against the current kubeconfig's cluster.

Wires the pieces together (API client, executor, reconciler, kopf registry, metrics endpoint)
and runs kopf embedded in our own event loop. `run_operator` is also what the integration
tests call, in a thread, with an explicit kubeconfig.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import start_http_server

from modelfleet.app.handlers import build_registry
from modelfleet.control.reconciler import FleetReconciler
from modelfleet.io.execution import FleetExecutor
from modelfleet.io.informer import ConfigMapInformer, Informer, PodInformer
from modelfleet.io.kube import (
    ClientSettings,
    Connection,
    KubeClient,
    context_namespace,
    load_connection,
)

logger = logging.getLogger("modelfleet.operator")


@dataclass
class OperatorOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespaces: Sequence[str] = ()
    all_namespaces: bool = False
    qps: float = 50.0
    burst: int = 100
    concurrency: int = 32
    metrics_port: int | None = None
    liveness: str | None = None
    peering: str | None = None
    standalone: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def run_operator(
    options: OperatorOptions,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    connection = load_connection(options.kubeconfig, options.context)
    client = KubeClient(
        connection,
        ClientSettings(qps=options.qps, burst=options.burst, concurrency=options.concurrency),
    )
    reconciler = FleetReconciler(FleetExecutor(client))
    scopes: list[str | None] = [None] if options.all_namespaces else list(options.namespaces)
    informers: list[Informer] = [
        PodInformer(client, ns, reconciler.observe_pod, reconciler.resync_pods) for ns in scopes
    ]
    informers += [
        ConfigMapInformer(client, ns, reconciler.observe_config_map, reconciler.resync_config_maps)
        for ns in scopes
    ]
    registry = build_registry(reconciler, informers)
    _register_login(registry, connection)
    if options.metrics_port is not None:
        start_http_server(options.metrics_port)
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=options.all_namespaces,
            namespaces=list(options.namespaces),
            standalone=options.standalone,
            peering_name=options.peering,
            liveness_endpoint=options.liveness,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        await client.close()


def _register_login(registry: kopf.OperatorRegistry, connection: Connection) -> None:
    """kopf talks to the same server with the same credentials as our client."""

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        token = connection.headers.get("Authorization", "")
        scheme, _sep, value = token.partition(" ")
        verify = connection.verify
        return kopf.ConnectionInfo(
            server=connection.host,
            scheme=scheme or None,
            token=value or None,
            ca_path=verify if isinstance(verify, str) else None,
            insecure=verify is False,
            certificate_path=connection.cert[0] if connection.cert else None,
            private_key_path=connection.cert[1] if connection.cert else None,
        )


def add_operator_arguments(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        dest="namespaces",
        help="namespace to watch (repeatable); default: the kubeconfig context's namespace",
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch all namespaces")
    parser.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default $KUBECONFIG or ~/.kube/config; in-cluster config inside a pod)",
    )
    parser.add_argument("--context", help="kubeconfig context")
    parser.add_argument(
        "--qps",
        type=float,
        default=50.0,
        help="client-side API request rate limit (0: none; default 50)",
    )
    parser.add_argument(
        "--burst", type=int, default=100, help="client-side burst above --qps (default 100)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="API requests in flight at most (default 32)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=9090,
        help="Prometheus /metrics port (default 9090; -1 disables)",
    )
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="kopf liveness endpoint URL ('' disables)",
    )
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--peering", help="kopf peering name: replicas elect one active operator")
    peering.add_argument(
        "--standalone", action="store_true", default=None, help="no peering (one replica only)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs")


def main_from_args(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":%(message)r}',
    )
    namespaces = list(args.namespaces)
    if not namespaces and not args.all_namespaces:
        namespaces = [context_namespace(args.kubeconfig, args.context)]
    options = OperatorOptions(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespaces=namespaces,
        all_namespaces=args.all_namespaces,
        qps=args.qps,
        burst=args.burst,
        concurrency=args.concurrency,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        liveness=args.liveness or None,
        peering=args.peering,
        standalone=True if args.standalone else None,
    )
    logger.info("watching %s", "all namespaces" if args.all_namespaces else ", ".join(namespaces))
    # The pod cache holds a decoded JSON tree per well (no reference cycles): with the default
    # thresholds the cyclic collector's full passes over 10,000 of them cost seconds of CPU
    # during a roll-out. Young objects are collected less often and old ones almost never.
    gc.set_threshold(50_000, 20, 100)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_operator(options))
    return 0


class OperatorCommand:
    name = "operator"
    help = "run the operator against the current kubeconfig's cluster"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_operator_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return main_from_args(args)


COMMAND = OperatorCommand()
