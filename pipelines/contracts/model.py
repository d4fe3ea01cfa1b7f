"""The feature contract: what a tabular binary-outcome dataset must look like before a model may learn from it.

A contract is YAML (see `readmission-risk.yaml`). Per column: dtype, required, range or categories, unit,
maximum missing fraction, whether it is PHI (and then dropped or tokenized before anything leaves
validation), whether it is a sensitive attribute for fairness, and whether it is a model feature. At the
top: the label, data freshness, and optionally the column that groups rows of one patient for the split.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Dtype = Literal["integer", "float", "boolean", "category", "date", "string"]
NUMERIC_DTYPES: frozenset[str] = frozenset({"integer", "float", "boolean"})
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_MODEL_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")  # as clinops.models.MODEL_NAME_RE
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlternateUnit(_Strict):
    """A unit the source might switch to; `canonical = value * scale + offset`. Used only to explain violations."""

    unit: str
    scale: float
    offset: float = 0.0


class ColumnSpec(_Strict):
    dtype: Dtype
    description: str | None = None
    required: bool = True
    range: tuple[float, float] | None = Field(default=None, description="inclusive [min, max]")
    categories: list[str] | None = None
    unit: str | None = None
    alternate_units: list[AlternateUnit] = Field(default_factory=list)
    max_missing: float = Field(default=0.0, ge=0.0, le=1.0, description="largest allowed fraction of empty cells")
    phi: bool = False
    phi_handling: Literal["drop", "tokenize"] = "drop"
    sensitive: bool = False
    bins: list[float] | None = Field(default=None, description="edges of fairness bands for a numeric attribute")
    fairness_groups: dict[str, list[str]] | None = Field(
        default=None, description="report these pooled groups instead of raw categories (unlisted: not assessed)"
    )
    feature: bool | None = Field(default=None, description="default: every column that is not PHI or the label")

    @field_validator("range")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and v[0] > v[1]:
            raise ValueError(f"range {list(v)} has min above max")
        return v

    @field_validator("categories")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            v = [str(c) for c in v]
            if len(set(v)) != len(v) or not v:
                raise ValueError("categories must be a non-empty list without duplicates")
        return v

    @field_validator("bins")
    @classmethod
    def _increasing(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) < 3 or any(b <= a for a, b in pairwise(v))):
            raise ValueError("bins need at least 3 strictly increasing edges (2 bands)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.range is not None and self.dtype not in ("integer", "float"):
            raise ValueError(f"range only applies to integer or float columns, not {self.dtype}")
        if self.categories is not None and self.dtype != "category":
            raise ValueError("categories only apply to dtype category")
        if self.dtype == "category" and self.categories is None:
            raise ValueError("a category column must list its categories")
        if self.phi and self.feature:
            raise ValueError("a PHI column can never be a model feature")
        if self.phi and self.sensitive:
            raise ValueError("a PHI column cannot be a fairness attribute (it never leaves validation)")
        if self.bins is not None and (not self.sensitive or self.dtype not in ("integer", "float")):
            raise ValueError("bins apply to numeric sensitive attributes only")
        if self.sensitive and self.dtype in ("integer", "float") and self.bins is None:
            raise ValueError("a numeric sensitive attribute needs bins, e.g. [18, 45, 65, 80, 120]")
        if self.sensitive and self.dtype in ("date", "string"):
            raise ValueError(f"a {self.dtype} column cannot be a fairness attribute")
        if self.fairness_groups is not None:
            if self.dtype != "category" or not self.sensitive:
                raise ValueError("fairness_groups apply to sensitive category columns only")
            pooled = [c for members in self.fairness_groups.values() for c in members]
            unknown = sorted(set(pooled) - set(self.categories or []))
            if unknown or len(pooled) != len(set(pooled)):
                raise ValueError(f"fairness_groups must use each declared category at most once (bad: {unknown})")
        if self.feature and self.dtype in ("date", "string"):
            raise ValueError(f"a {self.dtype} column cannot be a feature; declare categories or set feature: false")
        return self


class LabelSpec(_Strict):
    column: str
    positive: str | int | bool = 1
    negative: str | int | bool = 0


class FreshnessSpec(_Strict):
    column: str = Field(description="a date column; the newest record must be recent enough")
    max_age_days: int = Field(ge=1)


class SplitSpec(_Strict):
    group_by: str | None = Field(default=None, description="rows sharing this value stay in one split (patient)")


class Contract(_Strict):
    name: str
    version: str
    description: str = Field(min_length=10)
    label: LabelSpec
    freshness: FreshnessSpec | None = None
    split: SplitSpec = Field(default_factory=SplitSpec)
    allow_extra_columns: bool = Field(default=False, description="extra columns are dropped; by default a violation")
    columns: dict[str, ColumnSpec]

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _MODEL_NAME.match(v):
            raise ValueError(
                f"name '{v}' is not a model slug (3-32 lower-case letters, digits and '-'): it names the MLflow "
                "experiment, the registry entry and the SageMaker model package group"
            )
        return v

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not _SEMVER.match(str(v)):
            raise ValueError(f"version '{v}' is not MAJOR.MINOR.PATCH")
        return str(v)

    @field_validator("columns")
    @classmethod
    def _names(cls, v: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        bad = [name for name in v if not _COLUMN_NAME.match(name)]
        if bad:
            raise ValueError(f"column names must be identifiers (letters, digits, _): {bad}")
        return v

    @model_validator(mode="after")
    def _references(self) -> Contract:
        label = self.columns.get(self.label.column)
        if label is None:
            raise ValueError(f"label column '{self.label.column}' is not declared under columns")
        if label.phi or label.sensitive or label.feature:
            raise ValueError("the label column cannot be PHI, sensitive or a feature")
        if label.max_missing != 0.0:
            raise ValueError("the label column cannot allow missing values (max_missing must be 0)")
        if self.freshness is not None:
            spec = self.columns.get(self.freshness.column)
            if spec is None or spec.dtype != "date":
                raise ValueError(f"freshness column '{self.freshness.column}' must be a declared date column")
        if self.split.group_by is not None:
            spec = self.columns.get(self.split.group_by)
            if spec is None:
                raise ValueError(f"split.group_by column '{self.split.group_by}' is not declared")
            if spec.phi and spec.phi_handling != "tokenize":
                raise ValueError("a PHI split.group_by column must use phi_handling: tokenize")
            if spec.feature:
                raise ValueError("the split.group_by column cannot be a feature")
        if not self.feature_columns:
            raise ValueError("the contract declares no feature columns")
        if not self.sensitive_columns:
            raise ValueError("declare at least one sensitive attribute (sensitive: true): fairness is not optional")
        return self

    def is_feature(self, name: str) -> bool:
        spec = self.columns[name]
        if spec.feature is not None:
            return spec.feature
        special = {self.label.column, self.split.group_by}
        return not spec.phi and name not in special and spec.dtype not in ("date", "string")

    @property
    def feature_columns(self) -> list[str]:
        return [name for name in self.columns if self.is_feature(name)]

    @property
    def numeric_features(self) -> list[str]:
        return [n for n in self.feature_columns if self.columns[n].dtype in NUMERIC_DTYPES]

    @property
    def categorical_features(self) -> list[str]:
        return [n for n in self.feature_columns if self.columns[n].dtype == "category"]

    @property
    def sensitive_columns(self) -> list[str]:
        return [name for name, spec in self.columns.items() if spec.sensitive]

    @property
    def phi_columns(self) -> list[str]:
        return [name for name, spec in self.columns.items() if spec.phi]

    @property
    def text_columns(self) -> frozenset[str]:
        """Columns to read verbatim: anything not declared as a number."""
        return frozenset(n for n, s in self.columns.items() if s.dtype not in ("integer", "float"))

    @property
    def retained_columns(self) -> list[str]:
        """Columns that leave validation: everything but dropped PHI (tokenized PHI stays as tokens)."""
        return [n for n, s in self.columns.items() if not (s.phi and s.phi_handling == "drop")]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "features": self.feature_columns,
            "sensitive_attributes": self.sensitive_columns,
            "label": self.label.column,
            "phi_columns_removed": self.phi_columns,
        }
