"""Request bodies: content types, JSON shapes and CSV, read into records or rows - or a client error.

JSON (`application/json`): one record `{"field": value, ...}`, a list of records, or `{"instances": [...]}`.
CSV (`text/csv`): a header row naming the fields, then one row per record. The header is required: a
headerless row would be read by position, and two swapped columns of the same type (two lab values, two
counts) would pass every check and be scored wrong. SageMaker Batch Transform therefore needs
`SplitType=None` (whole files) or JSON, since line splitting would strip the header from later chunks.

Error messages describe the body's shape (line and column of a JSON syntax error, cell counts); they never
quote its content.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from serving.container.validation import Problem, shown_name

JSON_TYPES = frozenset({"application/json"})
CSV_TYPES = frozenset({"text/csv"})
SUPPORTED = "application/json, text/csv"
ACCEPTABLE = frozenset({"*/*", "application/*", "application/json"})


@dataclass
class ClientError(Exception):
    """A request the client must fix; `status` is the HTTP status to answer with."""

    status: int
    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def about_body(cls, status: int, problem: str, field_name: str | None = None) -> ClientError:
        return cls(status, [Problem(None, field_name, problem)])


@dataclass(frozen=True)
class Records:
    records: list[Any]


@dataclass(frozen=True)
class CsvTable:
    header: list[str]
    rows: list[list[str]]


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`; raises 415 for a charset other than UTF-8."""
    if not content_type:
        raise ClientError.about_body(415, f"Content-Type is missing; send one of: {SUPPORTED}")
    kind, _, parameters = content_type.partition(";")
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ClientError.about_body(415, "unsupported charset: send UTF-8")
    kind = kind.strip().lower()
    if kind not in JSON_TYPES | CSV_TYPES:
        raise ClientError.about_body(415, f"unsupported Content-Type; send one of: {SUPPORTED}")
    return kind


def check_accept(accept: str | None) -> None:
    """Responses are JSON; a client that accepts only something else gets 406."""
    if not accept:
        return
    offered = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if not offered & ACCEPTABLE:
        raise ClientError.about_body(406, "responses are application/json; accept it (or */*)")


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ClientError.about_body(400, f"body is not valid UTF-8 (byte {exc.start})") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ClientError.about_body(
                    400, "duplicate field in a JSON object: which value to score is ambiguous", shown_name(key)
                )
            seen.add(key)
    return record


def read_json(body: bytes, max_rows: int) -> Records:
    try:
        document = json.loads(_text(body), parse_constant=_no_constants, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ClientError.about_body(
            400, f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ClientError.about_body(400, "body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, or an integer literal with too many digits
        message = str(exc) if "not valid JSON" in str(exc) else "a number literal is too long"
        raise ClientError.about_body(400, f"body is not valid JSON: {message}") from None
    if isinstance(document, dict) and "instances" in document:
        if len(document) != 1:
            raise ClientError.about_body(400, 'a body with "instances" must have no other top-level key')
        document = document["instances"]
        if not isinstance(document, list):
            raise ClientError.about_body(400, '"instances" must be a list of records')
    elif isinstance(document, dict):
        document = [document]
    elif not isinstance(document, list):
        raise ClientError.about_body(
            400, 'expected a JSON object (one record), a list of records, or {"instances": [records]}'
        )
    _check_count(len(document), max_rows)
    return Records(document)


def read_csv(body: bytes, max_rows: int) -> CsvTable:
    reader = csv.reader(io.StringIO(_text(body), newline=""), strict=True)
    try:
        lines = [line for line in reader if line]
    except csv.Error as exc:
        raise ClientError.about_body(
            400, f"body is not valid CSV at line {reader.line_num}: {str(exc).split(':')[0]}"
        ) from None
    if not lines:
        raise ClientError.about_body(400, "the CSV body has no lines")
    _check_count(len(lines) - 1, max_rows)
    return CsvTable(lines[0], lines[1:])


def _check_count(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise ClientError.about_body(400, "no records to score")
    if rows > max_rows:
        raise ClientError.about_body(413, f"{rows} records in one request; at most {max_rows} are allowed")


def read_body(body: bytes, kind: str, max_rows: int) -> Records | CsvTable:
    if not body:
        raise ClientError.about_body(400, "the body is empty")
    return read_json(body, max_rows) if kind in JSON_TYPES else read_csv(body, max_rows)
