"""Synthetic 30-day readmission data, deterministic by seed, at any row count, shaped like a real EHR extract.

One row is one index admission. Some patients have several admissions (and share a latent frailty, so their
outcomes correlate - the reason the split keeps a patient's rows together). Direct identifiers (MRN, name,
date of birth, discharge date) are present as a real extract would have them. Ages are top-coded at 90
(HIPAA Safe Harbor treats ages over 89 as identifying). Labs carry the units the contract declares.

Injection knobs (unit change, schema break, label bias): see `pipelines.data.injections`.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from pipelines.data.injections import Injections, Knobs, LabelBias, inject

__all__ = ["Injections", "LabelBias", "generate_readmission"]  # knobs re-exported for callers' convenience

DEFAULT_END_DATE = date(2025, 6, 30)
WINDOW_DAYS = 730
RACE_ETHNICITY = {
    "White": 0.57,
    "Black": 0.18,
    "Hispanic": 0.13,
    "Asian": 0.06,
    "AIAN": 0.02,
    "NHPI": 0.01,
    "Other/Unknown": 0.03,
}
DISPOSITIONS = ["Home", "Home health", "SNF", "Rehab", "AMA", "Hospice"]
_DISPOSITION_RISK = np.array([0.0, 0.25, 0.45, 0.2, 0.9, -0.6])
_FIRST_F = [
    "Mary",
    "Patricia",
    "Linda",
    "Barbara",
    "Maria",
    "Susan",
    "Aisha",
    "Mei",
    "Rosa",
    "Grace",
    "Fatima",
    "Keisha",
    "Ana",
    "Olga",
    "Priya",
    "Helen",
    "Dorothy",
    "Lucia",
    "Nadia",
    "Yuki",
]
_FIRST_M = [
    "James",
    "John",
    "Robert",
    "Michael",
    "Jose",
    "David",
    "Wei",
    "Ahmed",
    "Carlos",
    "Tyrone",
    "Kenji",
    "Ivan",
    "Raj",
    "Samuel",
    "Luis",
    "George",
    "Omar",
    "Dmitri",
    "Hiroshi",
    "Andre",
]
_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Garcia",
    "Nguyen",
    "Lopez",
    "Chen",
    "Patel",
    "Kim",
    "Okafor",
    "Haddad",
    "Novak",
    "Rossi",
    "Silva",
    "Cohen",
    "Walker",
    "Young",
    "Tanaka",
    "Ivanova",
    "Mensah",
    "Begay",
    "Kealoha",
    "Morales",
    "Singh",
    "Murphy",
    "Schmidt",
    "Dubois",
    "Yilmaz",
    "Jackson",
]


def _choice(rng: np.random.Generator, options: list[str], weights: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw from an (n, k) array of unnormalised weights."""
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    picks = (rng.random(len(weights))[:, None] > cumulative).sum(axis=1)
    return np.array(options, dtype=object)[np.minimum(picks, len(options) - 1)]


def _patients(rng: np.random.Generator, n: int, end_date: date) -> pd.DataFrame:
    sex = np.where(rng.random(n) < 0.53, "F", "M")
    race = rng.choice(list(RACE_ETHNICITY), size=n, p=list(RACE_ETHNICITY.values()))
    age_at_end = np.clip(rng.normal(64, 17, n), 20.5, 101)
    dob = [end_date - timedelta(days=int(a * 365.25)) for a in age_at_end]
    first = np.where(sex == "F", rng.choice(_FIRST_F, n), rng.choice(_FIRST_M, n))
    names = np.char.add(np.char.add(first.astype(str), " "), rng.choice(_LAST, n).astype(str))
    mrn = rng.choice(90_000_000, size=n, replace=False) + 10_000_000
    older = age_at_end >= 65
    minority = np.isin(race, ["Black", "Hispanic", "AIAN"])
    medicaid = np.where(older, 0.05, 0.22 + 0.12 * minority)
    payer_probs = np.column_stack(
        [np.where(older, 0.85, 0.10), medicaid, np.where(older, 0.08, 0.58 - 0.12 * minority), np.full(n, 0.05)]
    )
    return pd.DataFrame(
        {
            "mrn": np.char.add("MRN", mrn.astype(str)),
            "patient_name": names,
            "dob": dob,
            "sex": sex,
            "race_ethnicity": race,
            "payer": _choice(rng, ["Medicare", "Medicaid", "Commercial", "Self-pay"], payer_probs),
            "frailty": rng.normal(0, 0.6, n),
            "diabetes": rng.random(n) < 0.18 + 0.12 * (age_at_end > 50),
            "ckd": rng.random(n) < 0.05 + 0.15 * (age_at_end > 65),
            "chf": rng.random(n) < 0.04 + 0.12 * (age_at_end > 70),
        }
    )


def _measured(rng: np.random.Generator, values: np.ndarray, probability: np.ndarray | float) -> np.ndarray:
    return np.where(rng.random(len(values)) < probability, values, np.nan)


def generate_readmission(
    n_rows: int, seed: int = 0, *, end_date: date = DEFAULT_END_DATE, injections: Injections | None = None
) -> pd.DataFrame:
    if n_rows < 1:
        raise ValueError("n_rows must be at least 1")
    rng = np.random.default_rng(seed)
    n_patients = max(1, int(np.ceil(n_rows * 0.82)))
    patients = _patients(rng, n_patients, end_date)
    # Every patient has one admission; the remaining ones go to frail patients more often.
    weights = np.exp(1.2 * patients["frailty"].to_numpy())
    extra = rng.choice(n_patients, size=n_rows - n_patients, p=weights / weights.sum())
    p = patients.iloc[np.concatenate([np.arange(n_patients), extra])].reset_index(drop=True)
    n = n_rows

    discharge = pd.Timestamp(end_date) - pd.to_timedelta(rng.integers(0, WINDOW_DAYS, n), unit="D")
    age_days = (discharge - pd.to_datetime(p["dob"])).dt.days.to_numpy()
    age = np.clip(np.floor(age_days / 365.25), 18, 90).astype(int)
    frailty, diabetes, ckd, chf = (p[c].to_numpy() for c in ("frailty", "diabetes", "ckd", "chf"))
    male, medicaid = (p["sex"] == "M").to_numpy(), (p["payer"] == "Medicaid").to_numpy()

    charlson = np.minimum(rng.poisson(np.maximum(0.2, 0.3 + 0.035 * (age - 40)) + diabetes + 1.5 * ckd + 1.5 * chf), 15)
    emergency = rng.random(n) < 0.7
    admission_type = np.where(emergency, "Emergency", np.where(rng.random(n) < 0.5, "Urgent", "Elective"))
    los = np.clip(np.ceil(rng.lognormal(1.1 + 0.07 * charlson + 0.25 * emergency, 0.6)), 1, 365).astype(int)
    prior = np.minimum(rng.poisson(0.3 * np.exp(0.9 * frailty) * (1 + 0.3 * charlson)), 30)
    ed_visits = np.minimum(rng.poisson(0.4 * np.exp(0.7 * frailty) + 0.3 * medicaid), 30)
    medications = np.minimum(rng.poisson(4 + 1.5 * charlson), 60)
    hba1c = _measured(
        rng,
        np.clip(np.where(diabetes, rng.normal(7.8, 1.5, n), rng.normal(5.5, 0.4, n)), 4, 16),
        np.where(diabetes, 0.85, 0.25),
    ).round(1)
    creatinine = np.where(ckd, rng.lognormal(np.log(2.0), 0.45, n), rng.lognormal(np.log(0.85 + 0.15 * male), 0.2, n))
    creatinine = _measured(rng, np.clip(creatinine, 0.2, 15), 0.97).round(2)
    hemoglobin = _measured(
        rng, np.clip(rng.normal(np.where(male, 13.5, 12.3) - ckd - 0.1 * charlson, 1.6), 4, 20), 0.97
    ).round(1)
    sodium = _measured(rng, np.clip(rng.normal(139 - 2 * chf, 3.5), 110, 170), 0.98).round(0)
    albumin = _measured(rng, np.clip(rng.normal(3.6 - 0.05 * charlson, 0.5), 1, 6), 0.7).round(1)
    disposition_logits = np.column_stack(
        [
            np.zeros(n),
            -1.0 + 0.02 * (age - 60) + 0.1 * charlson,
            -2.0 + 0.05 * (age - 60) + 0.15 * charlson,
            -2.8 + 0.02 * (age - 60),
            np.full(n, -3.8) + 0.6 * medicaid,
            -4.5 + 0.04 * (age - 60) + 0.2 * charlson,
        ]
    )
    disposition = _choice(rng, DISPOSITIONS, np.exp(disposition_logits))
    disposition_idx = pd.Index(DISPOSITIONS).get_indexer(disposition)

    logit = (
        -3.95
        + 0.40 * np.minimum(prior, 6)
        + 0.20 * charlson
        + 0.35 * np.log(los)
        + 0.25 * np.minimum(ed_visits, 5)
        + 0.012 * (age - 60)
        + 0.05 * male
        + 1.5 * _DISPOSITION_RISK[disposition_idx]
        + 0.2 * medicaid
        + 0.03 * (medications - 8)
        + 0.4 * frailty
        + np.nan_to_num(0.8 * (hemoglobin < 10) + 0.5 * np.log(creatinine) + 0.7 * (np.abs(sodium - 139) > 5))
        + np.nan_to_num(0.6 * (albumin < 3.0) + 0.15 * np.clip(hba1c - 7, 0, None))
        + 0.8 * ((age > 75) & (disposition == "Home"))
        + 0.6 * ((los == 1) & emergency)
        + 0.6 * ((charlson >= 4) & (medications >= 12))
        + 0.3 * np.minimum(ed_visits, 5) * (age < 50)
    )
    readmitted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    table = pd.DataFrame(
        {
            "mrn": p["mrn"],
            "patient_name": p["patient_name"],
            "date_of_birth": pd.to_datetime(p["dob"]).dt.strftime("%Y-%m-%d"),
            "discharge_date": discharge.strftime("%Y-%m-%d"),
            "age": age,
            "sex": p["sex"],
            "race_ethnicity": p["race_ethnicity"],
            "payer": p["payer"],
            "admission_type": admission_type,
            "length_of_stay_days": los,
            "prior_admissions_12m": prior,
            "ed_visits_6m": ed_visits,
            "charlson_index": charlson,
            "num_medications": medications,
            "hba1c": hba1c,
            "creatinine": creatinine,
            "hemoglobin": hemoglobin,
            "sodium": sodium,
            "albumin": albumin,
            "discharge_disposition": disposition,
            "readmitted_30d": readmitted,
        }
    )
    table = table.sort_values("discharge_date", kind="stable").reset_index(drop=True)
    return inject(table, injections or Injections(), KNOBS, seed)


KNOBS = Knobs(
    label="readmitted_30d",
    unit_changes={
        "creatinine": lambda mg_dl: (mg_dl * 88.42).round(0),  # mg/dL -> umol/L
        "hba1c": lambda pct: ((pct - 2.152) / 0.09148).round(0),  # NGSP % -> IFCC mmol/mol
    },
    rename=("length_of_stay_days", "los_days"),
    # A warehouse view that started exporting prior admissions as text buckets.
    retype=(
        "prior_admissions_12m",
        lambda n: pd.cut(n, [-1, 0, 2, 5, 1000], labels=["0", "1-2", "3-5", "6+"]).astype(str),
    ),
)
