"""Command line: ``build`` what is missing, ``up`` a cluster in the foreground, ``cleanup``.

Why a CLI of its own: ``make real-cluster`` and ``make test-real`` call it, and a developer
needs the same three verbs by hand (build once, start one, clean after a SIGKILL).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from modelfleet_dev.real_cluster.build import BuildError, Component, binary_path, build
from modelfleet_dev.real_cluster.cluster import (
    ClusterError,
    ClusterOptions,
    KubeconfigAuth,
    running_real_cluster,
)
from modelfleet_dev.real_cluster.host_process import HOST_PROCESS_IMAGE
from modelfleet_dev.real_cluster.netns import NetworkError, cleanup_stale


def _already_stopping(signum: int, frame: FrameType | None) -> None:
    # os.write, not print: the handler may interrupt a print to the same buffered stream.
    os.write(1, f"[cluster] {signal.Signals(signum).name}: already stopping\n".encode())


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (or Ctrl-C) becomes KeyboardInterrupt, so the same `finally` tears the cluster
    down; the signals after it are only reported: a second SIGTERM (a supervisor's, an impatient
    Ctrl-C) raising inside that `finally` would abort the teardown and leave the pod network.
    Each component stop is bounded (SIGTERM, SIGKILL after 10 s); SIGKILL still ends it all."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _already_stopping)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_on_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _raise_interrupt)


def _up(args: argparse.Namespace) -> int:
    build()
    _stop_on_signals()
    options = ClusterOptions(nodes=args.nodes, auth=KubeconfigAuth(args.auth))
    try:
        with running_real_cluster(options) as cluster:
            if args.kubeconfig_out:
                out = Path(args.kubeconfig_out)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cluster.kubeconfig, out)
                out.chmod(0o600)
                print(f"[cluster] kubeconfig written to {out}", flush=True)
            print(
                f"[cluster] kubectl: {cluster.kubectl_path} --kubeconfig "
                f"{args.kubeconfig_out or cluster.kubeconfig}; Ctrl-C (or SIGTERM) stops it",
                flush=True,
            )
            threading.Event().wait()  # until a signal arrives
    except KeyboardInterrupt:
        print("[cluster] stopped", flush=True)
    return 0


def _test(args: argparse.Namespace) -> int:
    """pytest against a fresh cluster through KUBECONFIG, the operator run from this checkout."""
    build()
    _stop_on_signals()
    options = ClusterOptions(nodes=args.nodes, auth=KubeconfigAuth(args.auth))
    with running_real_cluster(options) as cluster:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(cluster.kubeconfig)
        env.setdefault("MODELFLEET_E2E_START_OPERATOR", "1")
        # Pods of this image run the real model-runtime (the responder plays their kubelet).
        env.setdefault("MODELFLEET_E2E_RUNTIME_IMAGE", HOST_PROCESS_IMAGE)
        # The suite's kubectl is the built one (same version as the server), first on PATH.
        env["PATH"] = f"{cluster.kubectl_path.parent}{os.pathsep}{env.get('PATH', '')}"
        pytest_args = [a for a in args.pytest_args if a != "--"] or ["tests/e2e", "-q"]
        return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], env=env).returncode


def _component(name: str) -> Component:
    try:
        return Component(name)
    except ValueError:
        known = ", ".join(c.value for c in Component)
        raise argparse.ArgumentTypeError(f"no component {name!r} (known: {known})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelfleet_dev.real_cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser(
        "build", help="build the missing binaries into ~/.cache/modelfleet/k8s"
    )
    build_cmd.add_argument(
        "components",
        nargs="*",
        type=_component,
        metavar="COMPONENT",
        help=f"only these ({', '.join(c.value for c in Component)}; default: all); "
        "`build kubectl` is what the demo and the tests need",
    )
    up = sub.add_parser("up", help="build what is missing, start a cluster, wait for Ctrl-C")
    up.add_argument("--kubeconfig-out", help="copy the admin kubeconfig here")
    up.add_argument("--nodes", type=int, default=2)
    up.add_argument("--auth", choices=[a.value for a in KubeconfigAuth], default="cert")
    sub.add_parser("cleanup", help="remove pod networks of harnesses that died (SIGKILL)")
    sub.add_parser("kubectl-path", help="print the built kubectl's path")
    test = sub.add_parser("test", help="run pytest (default: tests/e2e) on a fresh cluster")
    test.add_argument("--nodes", type=int, default=2)
    test.add_argument("--auth", choices=[a.value for a in KubeconfigAuth], default="cert")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.components or None)
        elif args.command == "up":
            return _up(args)
        elif args.command == "test":
            return _test(args)
        elif args.command == "cleanup":
            for line in cleanup_stale():
                print(f"removed {line}")
        elif args.command == "kubectl-path":
            print(binary_path(Component.KUBECTL))
    except (BuildError, ClusterError, NetworkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
