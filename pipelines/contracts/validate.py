"""Check a raw table against its contract; return a readable report and, if it passes, the de-identified table.

The report never carries a PHI value: PHI columns report counts only, unexpected columns report their names
only, and examples from other columns are masked when they look like an identifier (defence in depth for
identifiers that leak into the wrong column). The clean table has dropped PHI removed and tokenized PHI
replaced by keyed-hash tokens, so nothing downstream of validation can see an identifier.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.contracts.model import ColumnSpec, Contract

Severity = Literal["violation", "unusable"]
MAX_EXAMPLES = 5
_BOOLEAN = {**dict.fromkeys(("true", "t", "yes", "y", "1"), 1.0), **dict.fromkeys(("false", "f", "no", "n", "0"), 0.0)}
_IDENTIFIER_PATTERNS = [
    re.compile(p)
    for p in (
        r"\S+@\S+\.\w+",  # e-mail
        r"\b\d{3}-\d{2}-\d{4}\b",  # SSN
        r"\(?\b\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b",  # phone
        r"\d{6,}",  # MRN / account numbers
        r"\b[A-Za-z]{2,4}-?\d{5,}\b",  # prefixed record numbers
        r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b",  # dates
        r"^[A-Z][a-z]+,? [A-Z][a-z]+$",  # "Given Family" / "Family, Given"
    )
]


@dataclass(frozen=True)
class Issue:
    column: str | None
    check: str
    message: str
    count: int = 0
    examples: tuple[str, ...] = ()
    severity: Severity = "violation"


@dataclass
class ContractReport:
    contract_name: str
    contract_version: str
    rows: int
    as_of: str
    issues: list[Issue] = field(default_factory=list)
    phi_removed: dict[str, str] = field(default_factory=dict)
    missing_fraction: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> Literal["passed", "violated", "unusable"]:
        if any(i.severity == "unusable" for i in self.issues):
            return "unusable"
        return "violated" if self.issues else "passed"

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def reasons(self) -> list[str]:
        return [f"{i.column}: {i.message}" if i.column else i.message for i in self.issues]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["issues"] = [asdict(i) | {"examples": list(i.examples)} for i in self.issues]
        return data

    def to_markdown(self) -> str:
        lines = [
            f"# Contract report: {self.contract_name} v{self.contract_version} - {self.status.upper()}",
            "",
            f"- rows checked: {self.rows}",
            f"- checked as of: {self.as_of}",
            "- PHI removed before anything left validation: "
            + (", ".join(f"{c} ({how})" for c, how in self.phi_removed.items()) or "none declared"),
            "",
        ]
        if not self.issues:
            return "\n".join([*lines, "No violations.", ""])
        lines += ["| column | check | rows | problem | examples |", "|---|---|---|---|---|"]
        for i in self.issues:
            examples = ", ".join(f"`{e}`" for e in i.examples) or "-"
            lines.append(f"| {i.column or '(dataset)'} | {i.check} | {i.count} | {i.message} | {examples} |")
        return "\n".join([*lines, ""])


def safe_example(value: Any) -> str:
    """An example value fit for a report, or a mask if it looks like an identifier. Two capitalised words
    read as a name, so a category label like "Medicare Advantage" is masked too: the count still shows."""
    text = str(value).strip()[:40]
    if any(p.search(text) for p in _IDENTIFIER_PATTERNS):
        return "[masked: looks like an identifier]"
    return text


def _examples(values: pd.Series) -> tuple[str, ...]:
    top = values.astype(str).value_counts().index[:MAX_EXAMPLES]
    return tuple(dict.fromkeys(safe_example(v) for v in top))


def _norm_label(value: Any) -> str:
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _coerce(raw: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, pd.Series]:
    """Return (typed values, mask of present values that do not fit the dtype)."""
    present = raw.notna()
    if spec.dtype in ("integer", "float"):
        typed = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = present & typed.isna()
        if spec.dtype == "integer":
            fractional = typed.notna() & (typed % 1 != 0)
            bad |= fractional
            typed = typed.mask(fractional)
        return typed, bad
    if spec.dtype == "boolean":
        typed = raw.map(lambda v: _BOOLEAN.get(_norm_label(v), np.nan) if pd.notna(v) else np.nan).astype("float64")
        return typed, present & typed.isna()
    if spec.dtype == "date":
        typed = pd.to_datetime(raw, errors="coerce", format="ISO8601")
        return typed, present & typed.isna()
    text = raw.astype("string").str.strip()
    if spec.dtype == "category":
        bad = present & ~text.isin(spec.categories or [])
        return text.mask(bad).astype("object"), bad
    return text.astype("object"), pd.Series(False, index=raw.index)


def _unit_hint(values: pd.Series, spec: ColumnSpec) -> str:
    if spec.range is None:
        return ""
    lo, hi = spec.range
    for alt in spec.alternate_units:
        converted = values * alt.scale + alt.offset
        if len(values) and ((converted >= lo) & (converted <= hi)).mean() >= 0.9:
            return f"; these fit the range if read as {alt.unit}: the source probably switched units from {spec.unit}"
    return ""


def _rename_hint(missing: str, spec: ColumnSpec, raw: pd.DataFrame, extras: list[str]) -> str:
    for name in extras:
        similar_name = difflib.SequenceMatcher(None, missing, name).ratio() >= 0.5
        typed, bad = _coerce(raw[name], spec)
        present = raw[name].notna()
        fits = present.any() and not bad[present].mean() > 0.05
        if fits and spec.range is not None:
            inside = typed.dropna().between(*spec.range)
            fits = bool(inside.mean() >= 0.95) if len(inside) else False
        if fits or similar_name:
            return f"; unexpected column '{name}' looks like it (renamed upstream?)"
    return ""


def tokenize(values: pd.Series, key: bytes) -> pd.Series:
    """Keyed hash (BLAKE2b MAC): stable under one key, irreversible without it. A plain hash of an MRN is not
    enough: the space of MRNs is small enough to hash every candidate and look the token up."""
    codes, uniques = pd.factorize(values.astype("string").to_numpy(dtype=object, na_value=None))
    tokens = np.array(
        [None]
        + ["tok_" + hashlib.blake2b(v.encode(), key=key[:64], digest_size=10).hexdigest() for v in uniques.tolist()],
        dtype=object,
    )
    return pd.Series(tokens[codes + 1], index=values.index, dtype=object)


def _check_columns(raw: pd.DataFrame, contract: Contract, issues: list[Issue]) -> list[str]:
    declared = set(contract.columns)
    extras = [c for c in raw.columns if c not in declared]
    for name, spec in contract.columns.items():
        if name not in raw.columns and spec.required:
            hint = _rename_hint(name, spec, raw, extras)
            issues.append(Issue(name, "missing_column", f"required column is missing{hint}"))
    if extras and not contract.allow_extra_columns:
        for name in extras:  # names only: an undeclared column may hold anything, PHI included
            issues.append(
                Issue(
                    name,
                    "unexpected_column",
                    "column is not in the contract (values withheld); declare it or remove it",
                )
            )
    return extras


def _check_values(name: str, raw: pd.Series, spec: ColumnSpec, issues: list[Issue]) -> pd.Series:
    total = len(raw)
    typed, bad = _coerce(raw, spec)
    withheld = spec.phi
    if bad.any():
        what = f"categories {spec.categories}" if spec.dtype == "category" else f"dtype {spec.dtype}"
        examples = () if withheld else _examples(raw[bad])
        suffix = " (values withheld: PHI column)" if withheld else ""
        issues.append(
            Issue(
                name,
                "dtype" if spec.dtype != "category" else "category",
                f"{int(bad.sum())} of {total} values do not fit {what}{suffix}",
                int(bad.sum()),
                examples,
            )
        )
    missing = int(raw.isna().sum())
    if total and missing / total > spec.max_missing:
        issues.append(
            Issue(name, "missing", f"{missing / total:.1%} empty, contract allows {spec.max_missing:.1%}", missing)
        )
    if spec.range is not None:
        lo, hi = spec.range
        outside = typed.notna() & ((typed < lo) | (typed > hi))
        if outside.any():
            values = typed[outside]
            unit = f" {spec.unit}" if spec.unit else ""
            hint = _unit_hint(values, spec)
            examples = () if withheld else _examples(values.map(lambda v: f"{v:g}"))
            issues.append(
                Issue(
                    name,
                    "range",
                    f"{int(outside.sum())} of {total} values outside [{lo:g}, {hi:g}]{unit}{hint}",
                    int(outside.sum()),
                    examples,
                )
            )
    return typed


def _check_label(raw: pd.Series, contract: Contract, issues: list[Issue]) -> pd.Series:
    spec = contract.label
    text = raw.astype("string").str.strip().str.lower()
    number = pd.to_numeric(text, errors="coerce")
    integral = number.notna() & (number % 1 == 0)
    text = text.mask(integral, number.where(integral).astype("Int64").astype("string"))  # "1.0" means 1
    label = text.map({_norm_label(spec.positive): 1.0, _norm_label(spec.negative): 0.0}).astype("float64")
    bad = label.isna()
    if bad.any():
        issues.append(
            Issue(
                spec.column,
                "label",
                f"{int(bad.sum())} labels are neither {spec.positive!r} nor {spec.negative!r} or empty",
                int(bad.sum()),
                _examples(raw[bad].fillna("(empty)")),
            )
        )
    elif label.nunique() < 2:
        only = "positive" if label.iloc[0] == 1 else "negative"
        issues.append(
            Issue(
                spec.column,
                "label_classes",
                f"every label is {only}: a model cannot learn from one class; "
                "check the extract's outcome definition or the label mapping",
                len(label),
                severity="unusable",
            )
        )
    return label


def _check_freshness(typed: pd.Series, contract: Contract, as_of: date, issues: list[Issue]) -> None:
    assert contract.freshness is not None
    dates = typed.dropna()
    if dates.empty:
        return
    # Ages in days only: the freshness column is often a patient date (PHI under HIPAA Safe Harbor).
    newest_age = (pd.Timestamp(as_of) - dates.max()).days
    future = int((dates > pd.Timestamp(as_of) + pd.Timedelta(days=1)).sum())
    column, limit = contract.freshness.column, contract.freshness.max_age_days
    if newest_age > limit:
        issues.append(
            Issue(
                column,
                "freshness",
                f"newest record is {newest_age} days old, contract allows {limit}: the extract is stale",
            )
        )
    if future:
        issues.append(Issue(column, "freshness", f"{future} records are dated after the run date", future))


def validate_frame(
    raw: pd.DataFrame, contract: Contract, *, as_of: date, token_key: bytes
) -> tuple[ContractReport, pd.DataFrame | None]:
    """Check `raw` (as read, ideally all strings) against `contract`. Returns the report and the clean table."""
    report = ContractReport(contract.name, contract.version, rows=len(raw), as_of=as_of.isoformat())
    report.phi_removed = {c: contract.columns[c].phi_handling for c in contract.phi_columns}
    issues = report.issues
    if raw.empty:
        issues.append(Issue(None, "empty", "the dataset has no rows", severity="unusable"))
        return report, None
    _check_columns(raw, contract, issues)
    clean: dict[str, pd.Series] = {}
    for name, spec in contract.columns.items():
        if name not in raw.columns:
            if not spec.required:
                clean[name] = pd.Series(np.nan, index=raw.index, dtype="float64")
            continue
        column = raw[name]
        report.missing_fraction[name] = round(float(column.isna().mean()), 4)
        if name == contract.label.column:
            clean[name] = _check_label(column, contract, issues)
            continue
        typed = _check_values(name, column, spec, issues)
        if contract.freshness and name == contract.freshness.column:
            _check_freshness(typed, contract, as_of, issues)
        clean[name] = typed
    if report.status != "passed":
        return report, None
    frame = pd.DataFrame({name: clean[name] for name in contract.retained_columns if name in clean})
    frame[contract.label.column] = frame[contract.label.column].astype("int8")
    for name in contract.phi_columns:
        if contract.columns[name].phi_handling == "tokenize" and name in frame:
            frame[name] = tokenize(raw[name], token_key)
    return report, frame.reset_index(drop=True)
