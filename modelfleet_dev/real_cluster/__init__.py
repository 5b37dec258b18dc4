"""A real Kubernetes control plane for the e2e suite and the benchmarks (issue 12).

Why this exists: kubesim is a cluster we wrote ourselves; this package builds kube-apiserver,
kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes v1.37.2), etcd and kwok from
Go modules (``cluster/go/``), and starts them as one cluster whose pods (played by kwok) have
routable IPs inside a network namespace of the harness's own, with one responder answering the
model runtime's endpoints for all of them. ``python -m modelfleet_dev.real_cluster --help``.
"""

from modelfleet_dev.real_cluster.build import BuildError, Component, build, missing_binaries
from modelfleet_dev.real_cluster.cluster import (
    ClusterError,
    ClusterOptions,
    ComponentError,
    RealCluster,
    running_real_cluster,
)

__all__ = [
    "BuildError",
    "ClusterError",
    "ClusterOptions",
    "Component",
    "ComponentError",
    "RealCluster",
    "build",
    "missing_binaries",
    "running_real_cluster",
]
