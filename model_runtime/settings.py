"""The runtime's settings: every `model-runtime serve` flag, and its environment variable.

One field per setting, with its default and a docstring; the flags are derived from the fields
(`settings_flags`), so a flag, its environment variable (MODELFLEET_RUNTIME_<FIELD>, e.g.
MODELFLEET_RUNTIME_PORT) and its --help cannot disagree. A flag beats the environment, which
beats the default. The operator's pod template passes --host, --port and --annotations-file.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MODELFLEET_RUNTIME_"


class RuntimeSettings(BaseSettings):
    """How one well's inference server runs: which bundle, where it listens, how it reloads."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, use_attribute_docstrings=True, frozen=True, extra="forbid"
    )

    bundle: str | None = None
    """Bundle URI: file://, http(s)://, or a path (directory or .tar.gz)."""

    host: str = "127.0.0.1"
    """Listen address."""

    port: int = 8080
    """Listen port (0 picks a free one)."""

    annotations_file: Path | None = None
    """Downward-API file of metadata.annotations; modelfleet.dev/bundle-uri and
    modelfleet.dev/bundle-digest in it override --bundle, and a change triggers a hot swap."""

    poll_interval: float = 2.0
    """Annotations file poll period, seconds."""

    retry_interval: float = 5.0
    """Retry period while an unreachable first bundle is not loaded, seconds."""

    drain_timeout: float = 25.0
    """Max seconds to drain in-flight requests on SIGTERM."""

    max_body_bytes: int = 8 * 1024 * 1024
    """Largest accepted request body, bytes."""

    log_level: str = "INFO"
    """Logging level."""
