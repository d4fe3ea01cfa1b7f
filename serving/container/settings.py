"""Server settings from the environment (SageMaker passes configuration as container environment variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_DIR = "/opt/ml/model"  # where SageMaker unpacks model.tar.gz
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's real-time payload limit (InvokeEndpoint Body: 6291456)
DEFAULT_MAX_ROWS = 10_000
DEFAULT_REQUEST_SECONDS = 60  # SageMaker waits 60 s for a reply; a request (idle wait, headers, body) gets as long
DEFAULT_DRAIN_SECONDS = 20  # SageMaker sends SIGKILL 30 s after SIGTERM; in-flight requests get this long
DEFAULT_MAX_EXPLAINED_ROWS = 100  # ~1 ms a row explained, ~10x its score (bench/explain.py): a bound per request
DEFAULT_MAX_CONNECTIONS = 128  # per worker: one thread each; more wait in the kernel's accept queue
WORKERS_VARIABLE = "SAGEMAKER_MODEL_SERVER_WORKERS"  # the name SageMaker's own serving toolkits read


class SettingsError(ValueError):
    """A setting has a value the server cannot use; the message names the variable."""


@dataclass(frozen=True)
class ServerSettings:
    model_dir: Path = Path(DEFAULT_MODEL_DIR)
    endpoint: str = "local"
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_rows: int = DEFAULT_MAX_ROWS
    max_explained_rows: int = DEFAULT_MAX_EXPLAINED_ROWS
    max_listed_problems: int = 100  # a 400 lists this many problems and counts the rest
    workers: int = 1
    request_seconds: float = DEFAULT_REQUEST_SECONDS
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServerSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "model_dir": Path(env.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR)),
            "endpoint": env.get("CLINOPS_ENDPOINT", "local"),
            "port": _positive(env, "SAGEMAKER_BIND_TO_PORT", 8080),
            "max_body_bytes": _positive(env, "CLINOPS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            "max_rows": _positive(env, "CLINOPS_MAX_ROWS", DEFAULT_MAX_ROWS),
            "max_explained_rows": _positive(env, "CLINOPS_MAX_EXPLAINED_ROWS", DEFAULT_MAX_EXPLAINED_ROWS),
            "workers": _positive(env, WORKERS_VARIABLE, available_cpus()),
            "request_seconds": _positive(env, "CLINOPS_REQUEST_SECONDS", DEFAULT_REQUEST_SECONDS),
            "drain_seconds": _positive(env, "CLINOPS_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS),
            "max_connections": _positive(env, "CLINOPS_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS),
        }
        if int(values["drain_seconds"]) >= 30:  # type: ignore[call-overload]
            raise SettingsError(
                "CLINOPS_DRAIN_SECONDS must be below 30: SageMaker kills the container 30 s after "
                "SIGTERM, so a longer drain would be cut short"
            )
        return cls(**{**values, **overrides})  # type: ignore[arg-type]


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    return value


def available_cpus() -> int:
    """CPUs this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
