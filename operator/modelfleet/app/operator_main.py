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
from typing import Any

import kopf
from prometheus_client import start_http_server

from modelfleet.app.handlers import build_registry
from modelfleet.app.settings import OperatorSettings
from modelfleet.control.reconciler import FleetReconciler
from modelfleet.io.execution import FleetExecutor
from modelfleet.io.informer import ConfigMapInformer, Informer, PodInformer
from modelfleet.io.kube import Connection, KubeClient, context_namespace, load_connection
from modelfleet.io.prometheus import PrometheusClient
from settings_flags import add_settings_arguments, settings_from_args

logger = logging.getLogger("modelfleet.operator")


async def run_operator(
    settings: OperatorSettings,
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    connection = load_connection(settings.kubeconfig, settings.context)
    client = KubeClient(connection, settings.client_settings())
    prometheus = PrometheusClient(client)
    reconciler = FleetReconciler(FleetExecutor(client), prometheus=prometheus)
    scopes: list[str | None] = [None] if settings.all_namespaces else list(settings.namespaces)
    informers: list[Informer] = [
        PodInformer(client, ns, reconciler.observe_pod, reconciler.resync_pods) for ns in scopes
    ]
    informers += [
        ConfigMapInformer(client, ns, reconciler.observe_config_map, reconciler.resync_config_maps)
        for ns in scopes
    ]
    registry = build_registry(reconciler, informers)
    _register_login(registry, connection)
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port)
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=settings.all_namespaces,
            namespaces=list(settings.namespaces),
            standalone=settings.standalone,
            peering_name=settings.peering,
            liveness_endpoint=settings.liveness,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        await prometheus.close()
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


def main_from_args(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":%(message)r}',
    )
    settings = settings_from_args(OperatorSettings, args)
    if not settings.namespaces and not settings.all_namespaces:
        namespace = context_namespace(settings.kubeconfig, settings.context)
        settings = settings.model_copy(update={"namespaces": [namespace]})
    watched = "all namespaces" if settings.all_namespaces else ", ".join(settings.namespaces)
    logger.info("watching %s", watched)
    # The pod cache holds a decoded JSON tree per well (no reference cycles): with the default
    # thresholds the cyclic collector's full passes over 10,000 of them cost seconds of CPU
    # during a roll-out. Young objects are collected less often and old ones almost never.
    gc.set_threshold(50_000, 20, 100)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_operator(settings))
    return 0


class OperatorCommand:
    name = "operator"
    help = "run the operator against the current kubeconfig's cluster"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_settings_arguments(parser, OperatorSettings)

    def run(self, args: argparse.Namespace) -> int:
        return main_from_args(args)


COMMAND = OperatorCommand()
