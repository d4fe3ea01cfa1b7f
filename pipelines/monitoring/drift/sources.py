"""Where current data comes from: a CSV/parquet table, a folder of capture files, or an S3 capture prefix.

S3 listing is paginated (a month of hourly capture files is far more than one 1000-key page). Reading is
sequential and streaming per object; the heavy lifting is counting, in `summary`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.errors import InputError
from pipelines.monitoring.drift.capture import CaptureBatch, combine, parse_lines

CAPTURE_SUFFIXES = (".jsonl", ".json")
TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://") or len(uri) <= 5:
            raise InputError(f"{uri} is not an s3://bucket/prefix URI")
        bucket, _, prefix = uri[5:].partition("/")
        return cls(bucket, prefix)


def s3_client(region: str | None = None) -> Any:
    import boto3

    return boto3.client("s3", region_name=region)


def list_s3_keys(
    client: Any, location: S3Location, suffixes: tuple[str, ...] = CAPTURE_SUFFIXES, page_size: int = 1000
) -> list[str]:
    keys: list[str] = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=location.bucket, Prefix=location.prefix, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(suffixes))
    return sorted(keys)


def list_local_files(folder: Path, suffixes: tuple[str, ...] = CAPTURE_SUFFIXES) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def _s3_lines(client: Any, bucket: str, key: str) -> Iterator[str]:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    for raw in body.iter_lines():
        yield raw.decode("utf-8", errors="replace")


def read_capture_files(files: list[Path], columns: list[str]) -> CaptureBatch:
    batches = []
    for file in files:
        with file.open(encoding="utf-8", errors="replace") as handle:
            batches.append(parse_lines(handle, columns, source=file.as_posix()))
    return combine(batches)


def read_capture_s3(
    uri: str, columns: list[str], client: Any | None = None, keys: list[str] | None = None
) -> CaptureBatch:
    location = S3Location.parse(uri)
    client = client or s3_client()
    keys = keys if keys is not None else list_s3_keys(client, location)
    return combine([parse_lines(_s3_lines(client, location.bucket, key), columns, source=key) for key in keys])


def read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path} cannot be read as a table: {str(exc).splitlines()[0]}") from None


def read_current(source: str, columns: list[str], client: Any | None = None) -> CaptureBatch:
    """A table (CSV/parquet with a header), a capture folder, or an s3:// capture prefix, as one batch."""
    if source.startswith("s3://"):
        return read_capture_s3(source, columns, client)
    path = Path(source)
    if path.is_file() and path.suffix in TABLE_SUFFIXES:
        frame = read_table(path)
        return CaptureBatch(events=len(frame), table=frame)
    if path.is_file() and path.name.endswith(CAPTURE_SUFFIXES):
        return read_capture_files([path], columns)
    if path.is_dir():
        files = list_local_files(path)
        if not files:
            tables = list_local_files(path, TABLE_SUFFIXES)
            if tables:
                frame = pd.concat([read_table(t) for t in tables], ignore_index=True)
                return CaptureBatch(events=len(frame), table=frame)
            raise InputError(f"no capture files (*.jsonl) or tables under {path}")
        return read_capture_files(files, columns)
    raise InputError(f"current data {source} does not exist; pass a CSV, a capture folder or an s3:// prefix")
