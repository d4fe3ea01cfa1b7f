"""Unit changes seen in the distribution itself: when a feed switches units, every value is multiplied by the
conversion factor, so the mean and the spread both move by that factor. A declared range or declared alternate
units catch only the values that leave the range; this catches the whole switch, with no declaration needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# (factor, what it converts, from unit, to unit): a current/baseline ratio of `factor` means from -> to;
# a ratio of 1/factor is the reverse conversion.
KNOWN_CONVERSIONS: tuple[tuple[float, str, str, str], ...] = (
    (10.0, "a decimal unit", "g/dL or cm", "g/L or mm"),
    (1000.0, "a milli- prefix", "g or L", "mg or mL"),
    (88.4, "creatinine", "mg/dL", "umol/L"),
    (18.0, "glucose", "mmol/L", "mg/dL"),
    (2.2046, "weight", "kg", "lb"),
    (2.54, "length", "inches", "cm"),
    (17.1, "bilirubin", "mg/dL", "umol/L"),
    (38.67, "cholesterol", "mmol/L", "mg/dL"),
)
MEAN_TOLERANCE = 0.12  # |log(ratio / factor)|: ~12% either way
SD_TOLERANCE = 0.30  # the spread is noisier than the mean, and tails differ between periods


@dataclass(frozen=True)
class UnitChange:
    factor: float  # current / baseline
    label: str  # "x88.4" or "/88.4"
    meaning: str  # "creatinine mg/dL -> umol/L"

    def describe(self) -> str:
        return f"{self.label} ({self.meaning})"


def _candidates() -> list[UnitChange]:
    out = []
    for factor, what, source, target in KNOWN_CONVERSIONS:
        out.append(UnitChange(factor, f"x{factor:g}", f"{what} {source} -> {target}"))
        out.append(UnitChange(1 / factor, f"/{factor:g}", f"{what} {target} -> {source}"))
    return out


def detect_unit_change(
    baseline_mean: float, baseline_sd: float, mean: float, sd: float, present: int, min_rows: int = 30
) -> UnitChange | None:
    """The known conversion that both the mean and the standard deviation moved by, if exactly one fits."""
    values = (baseline_mean, baseline_sd, mean, sd)
    if present < min_rows or not all(math.isfinite(v) for v in values) or baseline_mean <= 0 or mean <= 0:
        return None
    if baseline_sd <= 0 or sd <= 0:
        return None
    mean_ratio, sd_ratio = mean / baseline_mean, sd / baseline_sd
    fits = [
        c
        for c in _candidates()
        if abs(math.log(mean_ratio / c.factor)) <= MEAN_TOLERANCE and abs(math.log(sd_ratio / c.factor)) <= SD_TOLERANCE
    ]
    # Two conversions close together (x17.1 and x18) are both named rather than guessed between.
    if not fits:
        return None
    if len(fits) == 1:
        return fits[0]
    best = min(fits, key=lambda f: abs(math.log(mean_ratio / f.factor)))
    others = " or ".join(f.meaning for f in fits if f is not best)
    return UnitChange(best.factor, best.label, f"{best.meaning}; or {others}")
