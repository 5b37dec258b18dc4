"""A free TCP port on loopback, for a server a harness is about to start.

The port is free when asked; another process could take it before the server binds, which is
acceptable for tests and demos on one machine (servers that can report their own port, such as
`model-runtime serve --port 0`, should be asked that instead).
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port
