"""The feature contract, enforced per request: records or CSV rows in, a feature matrix or a list of problems out.

The matrix has one column per contract feature, in contract order: numbers as floats, booleans as 0/1,
categories as their index in the contract's category list, missing as NaN. A problem names the row (0-based;
None for the whole body) and the field, and says what is wrong and what is allowed - never the submitted
value, which may be PHI. A client-supplied field name is repeated only when it looks like a column name.

Rules, per feature column of the contract:
- present: a required column must appear in every record (CSV: in the header); an optional one may be absent.
- missing: null (CSV: an empty cell, NA, NaN or null) is allowed only where the contract allows missing
  values (`max_missing` > 0). The fraction itself is a property of a dataset, watched by drift monitoring.
- type: JSON numbers for integer/float (integers may be written 5 or 5.0), true/false or 0/1 for boolean,
  strings for category; CSV cells are read as text with the same rules.
- range and categories: as declared (inclusive; categories compared after trimming spaces).
- other fields: rejected, including contract columns that are not model inputs (identifiers, the label),
  unless the contract sets `allow_extra_columns`, in which case they are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.contracts import ColumnSpec, Contract
from pipelines.contracts.validate import safe_example

ABSENT = object()
CSV_MISSING = frozenset({"", "NA", "NaN", "null"})  # what the pipeline reads as missing in a CSV extract
CSV_BOOLEAN = {
    "true": 1.0,
    "t": 1.0,
    "yes": 1.0,
    "y": 1.0,
    "1": 1.0,
    "false": 0.0,
    "f": 0.0,
    "no": 0.0,
    "n": 0.0,
    "0": 0.0,
}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
WITHHELD = "[withheld]"


@dataclass(frozen=True)
class Problem:
    row: int | None
    field: str | None
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "problem": self.problem}


def shown_name(name: object) -> str:
    """A client's field name, repeated only if it looks like a column name and not like an identifier."""
    if isinstance(name, str) and _FIELD_NAME.match(name) and safe_example(name) == name:
        return name
    return WITHHELD


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


class FieldRule:
    """How one feature column's values are read and checked; returns (value, problem or None)."""

    def __init__(self, name: str, spec: ColumnSpec) -> None:
        self.name = name
        self.dtype = spec.dtype
        self.required = spec.required
        self.nullable = spec.max_missing > 0
        self.low, self.high = spec.range if spec.range is not None else (-math.inf, math.inf)
        self.codes = {category: float(i) for i, category in enumerate(spec.categories or [])}
        unit = f" {spec.unit}" if spec.unit else ""
        self.out_of_range = f"out of range: allowed [{self.low:g}, {self.high:g}]{unit}"
        self.unknown_category = "unknown category: allowed " + ", ".join(spec.categories or [])
        self.missing = "missing: a value is required" + ("" if self.required else " when the field is sent")
        expected = {
            "integer": "an integer",
            "float": "a number",
            "boolean": "true or false",
            "category": "a string (one of the categories)",
        }[spec.dtype]
        self.expected = f"wrong type: expected {expected}"

    def from_json(self, value: object) -> tuple[float, str | None]:
        if value is None:
            return math.nan, None if self.nullable else self.missing
        if self.dtype == "category":
            if not isinstance(value, str):
                return math.nan, f"{self.expected}, got {json_type(value)}"
            code = self.codes.get(value) if value in self.codes else self.codes.get(value.strip())
            return (code, None) if code is not None else (math.nan, self.unknown_category)
        if self.dtype == "boolean":
            if isinstance(value, int) and value in (0, 1):  # true/false are the ints 1/0 here too
                return float(value), None
            return math.nan, f"{self.expected} (or 0/1), got {json_type(value)}"
        if not isinstance(value, int | float) or isinstance(value, bool):  # JSON true is not a number
            return math.nan, f"{self.expected}, got {json_type(value)}"
        return self._number(value)

    def from_text(self, text: str) -> tuple[float, str | None]:
        text = text.strip()
        if text in CSV_MISSING:
            return math.nan, None if self.nullable else self.missing
        if self.dtype == "category":
            code = self.codes.get(text)
            return (code, None) if code is not None else (math.nan, self.unknown_category)
        if self.dtype == "boolean":
            flag = CSV_BOOLEAN.get(text.lower())
            return (flag, None) if flag is not None else (math.nan, f"{self.expected} (or 1/0, yes/no)")
        if not _NUMBER.match(text):
            return math.nan, f"{self.expected}, got text that is not a number"
        return self._number(float(text))

    def _number(self, value: int | float) -> tuple[float, str | None]:
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float range
            return math.nan, self.out_of_range
        if not math.isfinite(number):
            return math.nan, "not a finite number"
        if self.dtype == "integer" and not number.is_integer():
            return math.nan, f"{self.expected}, got a number with a fraction"
        if number < self.low or number > self.high:
            return math.nan, self.out_of_range
        return number, None


class TextMemo(dict[str, float]):
    """One column's `FieldRule.from_text`, computed once per distinct text: clinical extracts repeat values
    (ages, counts, categories, lab values to two decimals), so a million rows hold few distinct cells."""

    MAX_ENTRIES = 200_000  # beyond this many distinct texts, compute without remembering

    def __init__(self, rule: FieldRule) -> None:
        super().__init__()
        self.rule = rule
        self.problems: dict[str, str] = {}

    def __missing__(self, text: str) -> float:
        number, problem = self.rule.from_text(text)
        if problem is not None:
            self.problems[text] = problem
        if len(self) < self.MAX_ENTRIES:
            self[text] = number
        return number


class RequestSchema:
    """The contract's feature columns as request rules; builds the feature matrix or lists the problems."""

    def __init__(self, contract: Contract) -> None:
        self.columns = contract.feature_columns
        self.rules = [FieldRule(name, contract.columns[name]) for name in self.columns]
        self.names = frozenset(self.columns)
        self.not_inputs = frozenset(contract.columns) - self.names
        self.ignore_extra = contract.allow_extra_columns

    def from_records(self, records: list[Any]) -> tuple[np.ndarray | None, list[Problem]]:
        problems: list[Problem] = []
        matrix: list[list[float]] = []
        for row, record in enumerate(records):
            if not isinstance(record, dict):
                problems.append(
                    Problem(row, None, f"a record must be a JSON object of field: value, got {json_type(record)}")
                )
                continue
            values: list[float] = []
            for rule in self.rules:
                value = record.get(rule.name, ABSENT)
                if value is ABSENT:
                    if rule.required:
                        problems.append(Problem(row, rule.name, "missing: required field"))
                    values.append(math.nan)
                    continue
                number, problem = rule.from_json(value)
                if problem is not None:
                    problems.append(Problem(row, rule.name, problem))
                values.append(number)
            if not self.ignore_extra and not record.keys() <= self.names:
                problems.extend(
                    Problem(row, shown_name(key), self._extra(key)) for key in record if key not in self.names
                )
            matrix.append(values)
        return self._result(matrix, problems)

    @property
    def contract_names(self) -> frozenset[str]:
        """Every column the contract declares: a CSV first row naming one of them is a header."""
        return self.names | self.not_inputs

    def from_csv(self, header: list[str] | None, rows: list[list[str]]) -> tuple[np.ndarray | None, list[Problem]]:
        if header is None:
            return self.from_positional(rows)
        names = [cell.strip() for cell in header]
        if not self.names & set(names):
            return None, [
                Problem(
                    None,
                    None,
                    "CSV needs a header row naming the fields; the first line names "
                    "none of the contract's feature columns",
                )
            ]
        problems = self._header_problems(names)
        if problems:
            return None, problems
        positions = [(names.index(rule.name) if rule.name in names else None, rule) for rule in self.rules]
        matrix: list[list[float]] = []
        for row, cells in enumerate(rows):
            if len(cells) != len(names):
                problems.append(Problem(row, None, f"the row has {len(cells)} cells, the header has {len(names)}"))
                continue
            values: list[float] = []
            for position, rule in positions:
                if position is None:  # an optional column the header leaves out
                    values.append(math.nan)
                    continue
                number, problem = rule.from_text(cells[position])
                if problem is not None:
                    problems.append(Problem(row, rule.name, problem))
                values.append(number)
            matrix.append(values)
        return self._result(matrix, problems)

    def from_columns(
        self, columns: list[Sequence[str] | None], rows: int, memos: list[TextMemo] | None = None
    ) -> tuple[np.ndarray, list[Problem]]:
        """Column-major CSV cells (one sequence per rule, None for an optional column left out) for large
        batches: the same `FieldRule.from_text` on each distinct text once (memoised per column), so the matrix
        and problems equal `from_csv`'s. Unlike `from_csv`, the matrix is returned with the problems; rows named
        by a problem hold NaN where the problem is."""
        memos = memos or [TextMemo(rule) for rule in self.rules]
        matrix = np.full((rows, len(self.rules)), np.nan)
        problems: list[Problem] = []
        for j, (cells, rule, memo) in enumerate(zip(columns, self.rules, memos, strict=True)):
            if cells is None:
                continue
            matrix[:, j] = np.fromiter(map(memo.__getitem__, cells), dtype=np.float64, count=rows)
            if memo.problems:
                problems += [
                    Problem(row, rule.name, memo.problems[text])
                    for row, text in enumerate(cells)
                    if text in memo.problems
                ]
        problems.sort(key=lambda p: p.row if p.row is not None else -1)
        return matrix, problems

    def from_positional(self, rows: list[list[str]]) -> tuple[np.ndarray | None, list[Problem]]:
        """Headerless CSV: every row holds the feature columns in the contract's order (SageMaker's convention)."""
        width = len(self.rules)
        problems: list[Problem] = []
        matrix: list[list[float]] = []
        for row, cells in enumerate(rows):
            if len(cells) != width:
                problems.append(
                    Problem(
                        row,
                        None,
                        f"the row has {len(cells)} cells; a CSV row without a header "
                        f"holds the {width} feature columns in the contract's order ("
                        f"{', '.join(self.columns)}), or send a header row",
                    )
                )
                continue
            values: list[float] = []
            for cell, rule in zip(cells, self.rules, strict=True):
                number, problem = rule.from_text(cell)
                if problem is not None:
                    problems.append(Problem(row, rule.name, problem))
                values.append(number)
            matrix.append(values)
        return self._result(matrix, problems)

    def _header_problems(self, names: list[str]) -> list[Problem]:
        problems = [
            Problem(None, shown_name(name), "duplicate column in the header")
            for i, name in enumerate(names)
            if name in names[:i]
        ]
        problems += [
            Problem(None, rule.name, "missing: required column")
            for rule in self.rules
            if rule.required and rule.name not in names
        ]
        if not self.ignore_extra:
            problems += [Problem(None, shown_name(name), self._extra(name)) for name in names if name not in self.names]
        return problems

    def _extra(self, name: str) -> str:
        if name in self.not_inputs:
            return "not a model input: the contract declares it but the model never uses it; do not send it"
        return "unknown field: not in the feature contract"

    def _result(self, matrix: list[list[float]], problems: list[Problem]) -> tuple[np.ndarray | None, list[Problem]]:
        if problems:
            return None, problems
        return np.array(matrix, dtype=np.float64).reshape(len(matrix), len(self.rules)), problems

    def example_record(self) -> dict[str, Any]:
        """A valid synthetic record (mid-range numbers, first categories) for the health self-check."""
        record: dict[str, Any] = {}
        for rule in self.rules:
            if rule.dtype == "category":
                record[rule.name] = next(iter(rule.codes))
            elif rule.dtype == "boolean":
                record[rule.name] = False
            else:
                low, high = max(rule.low, -1e6), min(rule.high, 1e6)
                middle = (low + high) / 2
                record[rule.name] = math.floor(middle) if rule.dtype == "integer" else middle
        return record
