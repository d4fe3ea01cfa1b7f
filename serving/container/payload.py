"""Request bodies and reply formats: content types, JSON, JSON Lines and CSV, read into records or rows - or a
client error - with the row and object limits enforced while the body is parsed, never after.

Requests:
- JSON (`application/json`): one record `{"field": value, ...}`, a list of records, or `{"instances": [...]}`.
- JSON Lines (`application/jsonlines`, also `application/jsonl`, `application/x-jsonlines`): one record per line.
- CSV (`text/csv`): with a header row naming the fields, or without one - then each row holds the contract's
  feature columns in the contract's order (SageMaker's CSV convention, what Batch Transform sends when it splits
  a file by line). RFC 4180's `header=present|absent` parameter says which; without it, a first row that names
  a contract column is a header. Positional rows cannot tell two swapped columns of the same type apart: senders
  that can should send a header.

Replies: JSON by default; `Accept: text/csv` gets one line per record holding the positive-class probability
(empty when the score was not a finite probability) - the shape Batch Transform joins back to its input lines.

Explanations (JSON replies only) are asked for with `explain=N` among the `X-Amzn-SageMaker-Custom-Attributes`
parts (`clinops.traffic`; SageMaker passes that header through to the container and back): each row's N
largest feature contributions come back as `explanations`.

Limits: records are counted as the parser produces them (JSON arrays element by element, JSON objects as
each is built, JSON Lines and CSV line by line) and parsing stops at the first record over the limit (413).

Error messages describe the body's shape (line and column of a JSON syntax error, cell counts); they never
quote its content.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from clinops.traffic import CUSTOM_ATTRIBUTES_HEADER, EXPLAIN_ATTRIBUTE, requested_explanations
from serving.container.validation import Problem, shown_name

JSON_TYPE = "application/json"
JSON_LINES_TYPES = frozenset({"application/jsonlines", "application/jsonl", "application/x-jsonlines"})
CSV_TYPE = "text/csv"
JSON_TYPES = frozenset({JSON_TYPE})
CSV_TYPES = frozenset({CSV_TYPE})
SUPPORTED = "application/json, application/jsonlines, text/csv"
REPLY_TYPES = {
    "*/*": JSON_TYPE,
    "application/*": JSON_TYPE,
    JSON_TYPE: JSON_TYPE,
    "text/*": CSV_TYPE,
    CSV_TYPE: CSV_TYPE,
}
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_EXPLAIN_COUNT = re.compile(r"[0-9]{1,3}")  # ASCII digits only (str.isdigit() also accepts "²")
_INSTANCES = re.compile(r'[ \t\n\r]*\{[ \t\n\r]*"instances"[ \t\n\r]*:[ \t\n\r]*\[')


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
    header: list[str] | None  # None: headerless rows in the contract's feature order
    rows: list[list[str]]


@dataclass(frozen=True)
class RequestType:
    kind: str  # JSON_TYPE, CSV_TYPE or one of JSON_LINES_TYPES
    csv_header: bool | None = None  # RFC 4180 `header=present|absent`; None: decided from the first row


def media_type(content_type: str | None) -> RequestType:
    """`text/csv; charset=utf-8; header=absent` -> RequestType; 415 for another type or a charset but UTF-8."""
    if not content_type:
        raise ClientError.about_body(415, f"Content-Type is missing; send one of: {SUPPORTED}")
    kind, _, parameters = content_type.partition(";")
    header: bool | None = None
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"').lower()
        if key == "charset" and value not in ("utf-8", "utf8"):
            raise ClientError.about_body(415, "unsupported charset: send UTF-8")
        if key == "header":
            if value not in ("present", "absent"):
                raise ClientError.about_body(415, "the header parameter of text/csv is present or absent")
            header = value == "present"
    kind = kind.strip().lower()
    if kind not in JSON_TYPES | CSV_TYPES | JSON_LINES_TYPES:
        raise ClientError.about_body(415, f"unsupported Content-Type; send one of: {SUPPORTED}")
    return RequestType(kind, header if kind == CSV_TYPE else None)


def reply_type(accept: str | None) -> str:
    """The reply's media type: the first of JSON or CSV the client accepts (q=0 excludes); 406 if neither."""
    if not accept:
        return JSON_TYPE
    for part in accept.split(","):
        name, *parameters = (piece.strip().lower() for piece in part.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in parameters):
            continue
        if name in REPLY_TYPES:
            return REPLY_TYPES[name]
    raise ClientError.about_body(406, f"replies are {JSON_TYPE} or {CSV_TYPE}; accept one of them (or */*)")


def check_accept(accept: str | None) -> None:
    reply_type(accept)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ClientError.about_body(400, f"body is not valid UTF-8 (byte {exc.start})") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _too_many(max_rows: int, what: str = "records") -> ClientError:
    return ClientError.about_body(413, f"more than {max_rows} {what} in one request; at most {max_rows} are allowed")


class _JsonReader:
    """One request's JSON decoder: duplicate keys refused, NaN/Infinity refused, objects counted as built."""

    def __init__(self, max_objects: int) -> None:
        self.max_objects, self.objects = max_objects, 0
        decoder = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=self._object)
        # CPython's JSONDecoder sets scan_once in __init__ (typeshed leaves it out): one value at an index
        self.scan: Callable[[str, int], tuple[Any, int]] = decoder.scan_once  # type: ignore[attr-defined]

    def _object(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        self.objects += 1
        if self.objects > self.max_objects:  # a body of a million `{}` stops here, not after building them all
            raise _too_many(self.max_objects - 1, "JSON objects")
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

    def value(self, text: str, start: int) -> tuple[Any, int]:
        """One JSON value at `start` (after whitespace); the index after it."""
        start = _WHITESPACE.match(text, start).end()  # type: ignore[union-attr]
        try:
            return self.scan(text, start)
        except StopIteration:
            raise json.JSONDecodeError("Expecting value", text, start) from None

    def array(self, text: str, start: int, max_rows: int) -> tuple[list[Any], int]:
        """The elements of the array whose `[` ends at `start`, counted as each is read; the index after `]`."""
        items: list[Any] = []
        position = _WHITESPACE.match(text, start).end()  # type: ignore[union-attr]
        if text.startswith("]", position):
            return items, position + 1
        while True:
            item, position = self.value(text, position)
            items.append(item)
            if len(items) > max_rows:
                raise _too_many(max_rows)
            position = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
            if text.startswith("]", position):
                return items, position + 1
            if not text.startswith(",", position):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
            position += 1

    def end(self, text: str, position: int) -> None:
        position = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
        if position != len(text):
            raise json.JSONDecodeError("Extra data", text, position)


def _json_errors(text_error: Exception) -> ClientError:
    if isinstance(text_error, json.JSONDecodeError):
        return ClientError.about_body(
            400, f"body is not valid JSON: {text_error.msg} at line {text_error.lineno} column {text_error.colno}"
        )
    if isinstance(text_error, RecursionError):
        return ClientError.about_body(400, "body is not valid JSON: nested too deeply")
    message = str(text_error) if "not valid JSON" in str(text_error) else "a number literal is too long"
    return ClientError.about_body(400, f"body is not valid JSON: {message}")  # NaN/Infinity or a huge integer


def read_json(body: bytes, max_rows: int) -> Records:
    text = _text(body)
    reader = _JsonReader(max_rows + 1)  # + the {"instances": ...} wrapper
    try:
        if (wrapper := _INSTANCES.match(text)) is not None:
            document, position = reader.array(text, wrapper.end(), max_rows)
            position = _WHITESPACE.match(text, position).end()  # type: ignore[union-attr]
            if not text.startswith("}", position):
                raise ClientError.about_body(400, 'a body with "instances" must have no other top-level key')
            reader.end(text, position + 1)
        elif text.lstrip(" \t\n\r").startswith("["):
            document, position = reader.array(text, text.index("[") + 1, max_rows)
            reader.end(text, position)
        else:
            document, position = reader.value(text, 0)
            reader.end(text, position)
            if isinstance(document, dict) and "instances" in document:
                if len(document) != 1:
                    raise ClientError.about_body(400, 'a body with "instances" must have no other top-level key')
                raise ClientError.about_body(400, '"instances" must be a list of records')
            if not isinstance(document, dict):
                raise ClientError.about_body(
                    400, 'expected a JSON object (one record), a list of records, or {"instances": [records]}'
                )
            document = [document]
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise _json_errors(exc) from None
    _check_count(len(document), max_rows)
    return Records(document)


def read_json_lines(body: bytes, max_rows: int) -> Records:
    """One JSON object per line; blank lines are skipped; a line's error names its line number."""
    text = _text(body)
    reader = _JsonReader(max_rows)
    records: list[Any] = []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record, position = reader.value(line, 0)
            reader.end(line, position)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            error = _json_errors(exc)
            raise ClientError.about_body(400, f"line {number}: {error.problems[0].problem}") from None
        records.append(record)
        if len(records) > max_rows:
            raise _too_many(max_rows)
    _check_count(len(records), max_rows)
    return Records(records)


def _lines(text: str) -> Iterator[str]:
    """Lines without building the whole list first (a body may be millions of short lines)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        yield text[start:end]
        start = end + 1


def read_csv(body: bytes, max_rows: int, header: bool | None = None, names: frozenset[str] = frozenset()) -> CsvTable:
    """Rows, counted as read. `header`: True/False from the request, None to decide from the first row (a
    header when it names one of `names`, the contract's columns)."""
    reader = csv.reader(io.StringIO(_text(body), newline=""), strict=True)
    first: list[str] | None = None
    rows: list[list[str]] = []
    try:
        for line in reader:
            if not line:
                continue
            if first is None:
                first = line
                if header is None:
                    header = any(cell.strip() in names for cell in line)
                if header:
                    continue
            rows.append(line)
            if len(rows) > max_rows:
                raise _too_many(max_rows)
    except csv.Error as exc:
        raise ClientError.about_body(
            400, f"body is not valid CSV at line {reader.line_num}: {str(exc).split(':')[0]}"
        ) from None
    if first is None:
        raise ClientError.about_body(400, "the CSV body has no lines")
    _check_count(len(rows), max_rows)
    return CsvTable(first if header else None, rows)


def _check_count(rows: int, max_rows: int) -> None:
    if rows == 0:
        raise ClientError.about_body(400, "no records to score")
    if rows > max_rows:
        raise _too_many(max_rows)


def read_body(
    body: bytes, request: RequestType | str, max_rows: int, names: frozenset[str] = frozenset()
) -> Records | CsvTable:
    if isinstance(request, str):
        request = RequestType(request)
    if not body:
        raise ClientError.about_body(400, "the body is empty")
    if request.kind == CSV_TYPE:
        return read_csv(body, max_rows, request.csv_header, names)
    if request.kind in JSON_LINES_TYPES:
        return read_json_lines(body, max_rows)
    return read_json(body, max_rows)


def csv_reply(scores: list[float | None]) -> bytes:
    """One line per record: the probability, or an empty cell where the score was not a finite probability."""
    return "".join("\n" if s is None else f"{s!r}\n" for s in scores).encode()


def explain_count(attributes: str | None, features: int) -> int | None:
    """N of the request's `explain=N` (1..features), None when not asked; a bad N is a 400 naming the field."""
    values = requested_explanations(attributes)
    if not values:
        return None
    field_name = f"{CUSTOM_ATTRIBUTES_HEADER}: {EXPLAIN_ATTRIBUTE}"
    if len(values) > 1:
        raise ClientError.about_body(
            400, f"{EXPLAIN_ATTRIBUTE}=N appears {len(values)} times; send it once", field_name
        )
    if not _EXPLAIN_COUNT.fullmatch(values[0]) or not 1 <= int(values[0]) <= features:
        raise ClientError.about_body(
            400, f"{EXPLAIN_ATTRIBUTE}=N takes a whole number of features from 1 to {features}", field_name
        )
    return int(values[0])
