"""Server settings from the environment (SageMaker passes configuration as container environment variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_DIR = "/opt/ml/model"  # where SageMaker unpacks model.tar.gz
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024  # below SageMaker's 6 MB real-time payload limit
DEFAULT_MAX_ROWS = 10_000


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
    max_listed_problems: int = 100  # a 400 lists this many problems and counts the rest

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServerSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "model_dir": Path(env.get("SM_MODEL_DIR", DEFAULT_MODEL_DIR)),
            "endpoint": env.get("CLINOPS_ENDPOINT", "local"),
            "port": _positive(env, "SAGEMAKER_BIND_TO_PORT", 8080),
            "max_body_bytes": _positive(env, "CLINOPS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            "max_rows": _positive(env, "CLINOPS_MAX_ROWS", DEFAULT_MAX_ROWS),
        }
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
