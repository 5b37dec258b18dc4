"""`model-runtime serve` loads no pydantic (issue 16: ~11 MiB of every well pod's RSS) and no
prometheus_client (3 MiB with the HTTP servers it imports).

The import contract (.importlinter, runtime-without-pydantic) sees static imports of
model_runtime; this runs the modules `serve` imports, in a fresh interpreter, and looks at what
got loaded, so a dependency that pulls pydantic in (or a lazy import) is caught too."""

from __future__ import annotations

import subprocess
import sys

SERVE_CLOSURE = """
import sys
import model_runtime.cli
from model_runtime.bundle_state import BundleState
from model_runtime.dataplane import RequestLimits
from model_runtime.hotswap import BundleWatcher
from model_runtime.metrics import RuntimeMetrics
from model_runtime.server import RuntimeServer
model_runtime.cli.build_parser().parse_args(["serve", "--bundle", "/nowhere"])
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_serve_loads_neither_pydantic_nor_pydantic_settings() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", SERVE_CLOSURE], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "model_runtime" in loaded and "msgspec" in loaded
    assert {"pydantic", "pydantic_core", "pydantic_settings"}.isdisjoint(loaded)


def test_serve_loads_no_prometheus_client_nor_the_http_servers_it_imports() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", SERVE_CLOSURE.replace('.split(".")[0]', "")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"prometheus_client", "http.server", "wsgiref", "socketserver"}.isdisjoint(loaded)
