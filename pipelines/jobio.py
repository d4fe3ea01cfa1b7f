"""File conventions shared by the step entry points (the thin `main()` around each pure step function).

Inside a SageMaker processing job inputs arrive under /opt/ml/processing/input/<name> and outputs are
collected from /opt/ml/processing/output/<name>; a training job reads /opt/ml/input/data/<channel> and
writes /opt/ml/model. Every path is an argument, so the same entry point runs on a laptop.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.errors import InputError
from pipelines.jobpaths import PROCESSING_ROOT

PROCESSING = Path(PROCESSING_ROOT)
# SageMaker shows the content of this file as the job's FailureReason (processing: message, training: failure).
FAILURE_FILES = (Path("/opt/ml/output/message"), Path("/opt/ml/output/failure"))
TABLE_SUFFIXES = (".csv", ".parquet")


def _table_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TABLE_SUFFIXES)
    return [path]


def read_raw_table(path: str | Path, text_columns: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """Read an extract. `text_columns` are read verbatim (identifiers keep leading zeros, categories stay text);
    other columns are parsed by the fast C reader and anything it cannot parse stays text for the contract to
    judge, so a broken export still reaches validation."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"data file {path} does not exist; pass --data PATH to a CSV")
    files = _table_files(path)
    if not files:
        raise InputError(f"no .csv or .parquet file under {path}")
    frames = []
    for file in files:
        try:
            if file.suffix == ".parquet":
                frames.append(pd.read_parquet(file))
            else:
                frames.append(
                    pd.read_csv(
                        file,
                        dtype=dict.fromkeys(text_columns, str),
                        keep_default_na=False,
                        na_values=["", "NA", "NaN", "null"],
                        low_memory=False,
                    )
                )
        except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
            raise InputError(f"data file {file} cannot be read as a table: {str(exc).splitlines()[0]}") from None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def dataset_sha256(path: str | Path) -> str:
    """Hash of the input bytes (file names and contents, in order): `sha256sum` on one file gives the same."""
    files = _table_files(Path(path))
    digest = hashlib.sha256()
    if len(files) == 1:
        with files[0].open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return "sha256:" + digest.hexdigest()
    for file in files:
        digest.update(file.name.encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a table written by an upstream step (parquet keeps the types validation settled)."""
    files = _table_files(Path(path))
    if not files or not files[0].exists():
        raise InputError(f"expected a table at {path}; did the upstream step run?")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _json_safe(value.item())
    return value


def write_json(data: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(data), indent=2, sort_keys=False) + "\n")
    return path


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.json"))
        if len(candidates) != 1:
            raise InputError(f"expected one JSON file in {path}, found {len(candidates)}")
        path = candidates[0]
    if not path.is_file():
        raise InputError(f"expected {path}; did the upstream step run?")
    return json.loads(path.read_text())


def model_dir(path: str | Path, scratch: str | Path) -> Path:
    """A model input is either the bundle directory or SageMaker's model.tar.gz of it."""
    path = Path(path)
    archive = path / "model.tar.gz" if path.is_dir() else path
    if archive.name.endswith(".tar.gz") and archive.is_file():
        target = Path(scratch)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        return target
    return path


def report_failure(message: str) -> None:
    """Leave the reason where SageMaker surfaces it; no-op outside a SageMaker container."""
    for file in FAILURE_FILES:
        if file.parent.is_dir() and os.access(file.parent, os.W_OK):
            file.write_text(message[:1000])


def env_path(variable: str, default: str | Path) -> str:
    return os.environ.get(variable, str(default))
