"""Knobs that inject what hurts real deployments into a clean synthetic table.

Each knob draws from its own random stream, so a table with an injection differs from the clean one only
where the injection acts:
- `unit_change`: a lab switched the reporting unit of one test for the most recent rows (rows are in time
  order, so the tail is the period after the switch).
- `schema_break`: a column renamed upstream (`rename`), or exported with a different type (`retype`).
- `label_bias`: the outcome is ascertained unreliably for one subgroup (e.g. events at other hospitals go
  unrecorded), so there a share of labels ignores clinical risk and under-counts events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

Convert = Callable[[pd.Series], pd.Series]


@dataclass(frozen=True)
class LabelBias:
    column: str = "race_ethnicity"
    group: str = "Black"
    strength: float = 0.8  # share of the group's labels recorded without regard to clinical risk


@dataclass(frozen=True)
class Injections:
    unit_change: str | None = None  # a column the dataset's knobs know how to convert
    unit_change_share: float = 0.3
    schema_break: Literal["rename", "retype"] | None = None
    label_bias: LabelBias | None = None


@dataclass(frozen=True)
class Knobs:
    """How one dataset expresses each injection."""

    label: str
    unit_changes: dict[str, Convert] = field(default_factory=dict)
    rename: tuple[str, str] = ("", "")
    retype: tuple[str, Convert] | None = None


def inject(table: pd.DataFrame, injections: Injections, knobs: Knobs, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 1])
    table = table.copy()
    if injections.unit_change:
        if injections.unit_change not in knobs.unit_changes:
            raise ValueError(
                f"no unit change known for '{injections.unit_change}' (known: {sorted(knobs.unit_changes)})"
            )
        recent = np.arange(len(table)) >= int(len(table) * (1 - injections.unit_change_share))
        column = injections.unit_change
        table.loc[recent, column] = knobs.unit_changes[column](table.loc[recent, column])
    if injections.label_bias:
        bias = injections.label_bias
        overwrite = (table[bias.column] == bias.group).to_numpy() & (rng.random(len(table)) < bias.strength)
        noise = (rng.random(len(table)) < 0.6 * table[knobs.label].mean()).astype(int)
        table[knobs.label] = np.where(overwrite, noise, table[knobs.label])
    if injections.schema_break == "rename":
        table = table.rename(columns=dict([knobs.rename]))
    elif injections.schema_break == "retype" and knobs.retype is not None:
        column, convert = knobs.retype
        table[column] = convert(table[column])
    return table
