"""A local HTTP model store: serves each well's bundle at <url>/<model>/<version>/<well>/.

Why this exists: a ModelDeployment names its bundles with a URI template
(`http://.../{version}/{well}`), and both the real runtime and kubesim's simulated one fetch
`manifest.json` and then every file it lists. The demo and the e2e suite publish bundles that
live in the bundle cache (one directory per build) under that layout without copying them,
the way an object store would serve them. Loopback only, read-only, GET and HEAD.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class ModelStore:
    """Serves `bundles[(version, well)]` directories under `/<model>/<version>/<well>/`."""

    def __init__(self, model: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.model = model
        self._bundles: dict[tuple[str, str], Path] = {}
        self._lock = threading.Lock()
        self.requests = 0
        store = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                store._serve(self, body=True)

            def do_HEAD(self) -> None:
                store._serve(self, body=False)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the demo's screen is for the story, not for access logs

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def uri_template(self) -> str:
        """The ModelDeployment's spec.model.bundleUri for bundles published here."""
        return f"{self.url}/{self.model}/{{version}}/{{well}}"

    def bundle_uri(self, version: str, well: str) -> str:
        return f"{self.url}/{self.model}/{version}/{well}"

    def publish(self, bundles: Mapping[tuple[str, str], Path]) -> None:
        """Make `bundles[(version, well)]` downloadable (replaces an existing entry)."""
        with self._lock:
            self._bundles.update(bundles)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="model-store", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
            self._thread = None
        self._server.server_close()

    def _resolve(self, raw_path: str) -> Path | None:
        parts = [unquote(p) for p in urlsplit(raw_path).path.split("/") if p]
        if len(parts) < 4 or parts[0] != self.model:
            return None
        version, well, rest = parts[1], parts[2], parts[3:]
        if any(p in ("", ".", "..") for p in rest):
            return None
        with self._lock:
            root = self._bundles.get((version, well))
        if root is None:
            return None
        path = root.joinpath(*rest)
        return path if path.is_file() else None

    def _serve(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        # A client that went away (a pod deleted mid-download) needs no answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer(handler, body=body)

    def _answer(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        self.requests += 1
        path = self._resolve(handler.path)
        if path is None:
            message = f"no bundle file at {handler.path}".encode()
            handler.send_response(HTTPStatus.NOT_FOUND)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(message)))
            handler.end_headers()
            if body:
                handler.wfile.write(message)
            return
        data = path.read_bytes()
        handler.send_response(HTTPStatus.OK)
        content_type = "application/json" if path.suffix == ".json" else "application/octet-stream"
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)


@contextmanager
def running_model_store(model: str) -> Iterator[ModelStore]:
    store = ModelStore(model)
    store.start()
    try:
        yield store
    finally:
        store.stop()
