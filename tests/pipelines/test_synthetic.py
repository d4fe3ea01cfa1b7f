"""The synthetic generators: deterministic, any size, realistic enough, and injections that touch only their target."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines.data.injections import Injections, LabelBias
from pipelines.data.sepsis import generate_sepsis
from pipelines.data.synthetic import generate_readmission

GENERATORS = {"readmission": (generate_readmission, "readmitted_30d"), "sepsis": (generate_sepsis, "sepsis_within_12h")}


@pytest.mark.parametrize("name", GENERATORS)
def test_deterministic_by_seed_and_any_row_count(name: str) -> None:
    generate, _ = GENERATORS[name]
    pd.testing.assert_frame_equal(generate(500, seed=3), generate(500, seed=3))
    assert not generate(500, seed=3).equals(generate(500, seed=4))
    for rows in (1, 2, 7, 1234):
        assert len(generate(rows, seed=1)) == rows
    with pytest.raises(ValueError):
        generate(0)


@pytest.mark.parametrize(("name", "low", "high"), [("readmission", 0.12, 0.19), ("sepsis", 0.05, 0.14)])
def test_outcome_rate_is_clinically_plausible(name: str, low: float, high: float) -> None:
    generate, label = GENERATORS[name]
    assert low < generate(20_000, seed=11)[label].mean() < high


def test_readmission_extract_has_identifiers_and_repeat_patients() -> None:
    table = generate_readmission(5000, seed=2, end_date=date(2025, 6, 30))
    assert table["mrn"].str.fullmatch(r"MRN\d{8}").all()
    per_patient = table.groupby("mrn")[["patient_name", "date_of_birth", "sex"]].nunique()
    assert (per_patient == 1).all().all()  # identifiers are consistent per patient
    assert 0.1 < table["mrn"].duplicated().mean() < 0.3
    assert table["age"].between(18, 90).all() and table["age"].max() == 90  # top-coded
    assert table["discharge_date"].max() <= "2025-06-30"
    assert table["hba1c"].isna().mean() > 0.4  # not everyone is tested


def test_unit_change_touches_only_the_recent_lab_values() -> None:
    clean = generate_readmission(1000, seed=5)
    drifted = generate_readmission(1000, seed=5, injections=Injections(unit_change="creatinine"))
    pd.testing.assert_frame_equal(clean.drop(columns="creatinine"), drifted.drop(columns="creatinine"))
    ratio = (drifted["creatinine"] / clean["creatinine"]).iloc[700:].dropna()
    assert np.allclose(ratio, 88.42, rtol=0.05)
    pd.testing.assert_series_equal(clean["creatinine"].iloc[:700], drifted["creatinine"].iloc[:700])


def test_label_bias_touches_only_the_group_labels() -> None:
    clean = generate_readmission(4000, seed=6)
    biased = generate_readmission(4000, seed=6, injections=Injections(label_bias=LabelBias(strength=1.0)))
    changed = clean["readmitted_30d"] != biased["readmitted_30d"]
    assert changed.any() and (clean.loc[changed, "race_ethnicity"] == "Black").all()
    pd.testing.assert_frame_equal(clean.drop(columns="readmitted_30d"), biased.drop(columns="readmitted_30d"))
    black = clean["race_ethnicity"] == "Black"
    assert biased.loc[black, "readmitted_30d"].mean() < clean.loc[black, "readmitted_30d"].mean()


def test_schema_breaks() -> None:
    renamed = generate_readmission(50, seed=1, injections=Injections(schema_break="rename"))
    assert "los_days" in renamed and "length_of_stay_days" not in renamed
    retyped = generate_readmission(50, seed=1, injections=Injections(schema_break="retype"))
    assert set(retyped["prior_admissions_12m"]) <= {"0", "1-2", "3-5", "6+"}
    sepsis = generate_sepsis(50, seed=1, injections=Injections(schema_break="retype", unit_change="lactate"))
    assert sepsis["spo2"].str.endswith("%").all()
    with pytest.raises(ValueError, match="no unit change known"):
        generate_sepsis(10, injections=Injections(unit_change="creatinine_typo"))
