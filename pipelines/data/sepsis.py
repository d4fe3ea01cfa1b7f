"""Synthetic sepsis early-warning data: one row per vitals-and-labs snapshot of an adult inpatient encounter,
labelled with whether sepsis criteria are met within the next 12 hours. Deterministic by seed, any row count.

An encounter contributes several snapshots (so the split groups by encounter). Physiology shifts with the
outcome and with a latent severity per encounter; lactate is drawn more often for sicker patients, as on real
wards (informative missingness). Identifiers (MRN, encounter number, name, observation time) are present as
in a real extract. Injection knobs: see `pipelines.data.injections`.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from pipelines.data.injections import Injections, Knobs, inject
from pipelines.data.synthetic import _FIRST_F, _FIRST_M, _LAST, DEFAULT_END_DATE, RACE_ETHNICITY

WARDS = {"Medical": 0.45, "Surgical": 0.30, "Step-down": 0.15, "Oncology": 0.10}
WINDOW_HOURS = 180 * 24


def generate_sepsis(
    n_rows: int, seed: int = 0, *, end_date: date = DEFAULT_END_DATE, injections: Injections | None = None
) -> pd.DataFrame:
    if n_rows < 1:
        raise ValueError("n_rows must be at least 1")
    rng = np.random.default_rng(seed)
    n_enc = max(1, int(np.ceil(n_rows / 3)))
    enc = pd.DataFrame(
        {
            "mrn": np.char.add("MRN", (rng.choice(90_000_000, n_enc, replace=False) + 10_000_000).astype(str)),
            "encounter_id": np.char.add(
                "ENC", (rng.choice(900_000_000, n_enc, replace=False) + 100_000_000).astype(str)
            ),
            "sex": np.where(rng.random(n_enc) < 0.5, "F", "M"),
            "race_ethnicity": rng.choice(list(RACE_ETHNICITY), n_enc, p=list(RACE_ETHNICITY.values())),
            "ward": rng.choice(list(WARDS), n_enc, p=list(WARDS.values())),
            "age": np.clip(rng.normal(63, 17, n_enc), 18, 90).astype(int),
            "severity": rng.normal(0, 1, n_enc),
            "admitted_hour": rng.integers(0, WINDOW_HOURS, n_enc),
        }
    )
    first = np.where(enc["sex"] == "F", rng.choice(_FIRST_F, n_enc), rng.choice(_FIRST_M, n_enc)).astype(str)
    enc["patient_name"] = np.char.add(np.char.add(first, " "), rng.choice(_LAST, n_enc).astype(str))
    rows = np.concatenate([np.arange(n_enc), rng.integers(0, n_enc, max(0, n_rows - n_enc))])
    e = enc.iloc[rows].reset_index(drop=True)
    n = n_rows
    hours_in = np.minimum(rng.exponential(60, n), 2000).round(0)
    observed = pd.Timestamp(end_date) - pd.to_timedelta(WINDOW_HOURS - e["admitted_hour"] + hours_in, unit="h")
    observed = observed.where(observed <= pd.Timestamp(end_date), pd.Timestamp(end_date))
    severity, age = e["severity"].to_numpy(), e["age"].to_numpy()
    oncology = (e["ward"] == "Oncology").to_numpy()

    logit = -3.3 + 0.9 * severity + 0.02 * (age - 60) + 0.8 * oncology + 0.004 * np.minimum(hours_in, 200)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    # About one septic patient in six is hypothermic with a low white count instead of the classic picture.
    atypical = np.where(rng.random(n) < 0.17, -1.0, 1.0)
    heart_rate = np.clip(rng.normal(84 + 6 * y + 4 * severity, 13), 30, 220).round(0)
    resp_rate = np.clip(rng.normal(17 + 1.6 * y + 1.2 * severity, 3.5), 6, 50).round(0)
    temperature = np.clip(rng.normal(37.0 + 0.35 * y * atypical, 0.55), 32, 42).round(1)
    sbp = np.clip(rng.normal(126 - 6 * y - 4 * severity, 18), 50, 230).round(0)
    spo2 = np.clip(rng.normal(96.5 - 0.8 * y - 0.5 * severity, 2), 70, 100).round(0)
    wbc = np.clip(rng.lognormal(np.log(8) + 0.15 * y * atypical - 0.5 * oncology, 0.35), 0.2, 80).round(1)
    lactate = np.clip(rng.lognormal(np.log(1.2) + 0.2 * y + 0.1 * severity, 0.4), 0.3, 15).round(1)
    creatinine = np.clip(rng.lognormal(np.log(1.0) + 0.1 * y + 0.1 * severity, 0.35), 0.2, 15).round(2)
    platelets = np.clip(rng.normal(240 - 20 * y - 40 * oncology, 70), 5, 900).round(0)

    def measured(values: np.ndarray, probability: np.ndarray | float) -> np.ndarray:
        return np.where(rng.random(n) < probability, values, np.nan)

    table = pd.DataFrame(
        {
            "mrn": e["mrn"],
            "encounter_id": e["encounter_id"],
            "patient_name": e["patient_name"],
            "observation_time": observed.dt.strftime("%Y-%m-%dT%H:%M:%S"),
            "age": age,
            "sex": e["sex"],
            "race_ethnicity": e["race_ethnicity"],
            "ward": e["ward"],
            "hours_since_admission": hours_in,
            "heart_rate": heart_rate,
            "resp_rate": resp_rate,
            "temperature": temperature,
            "sbp": sbp,
            "spo2": spo2,
            "wbc": measured(wbc, 0.9),
            "lactate": measured(lactate, 0.35 + 0.3 * y + 0.05 * (severity > 1)),
            "creatinine": measured(creatinine, 0.9),
            "platelets": measured(platelets, 0.9),
            "sepsis_within_12h": y,
        }
    )
    table = table.sort_values("observation_time", kind="stable").reset_index(drop=True)
    return inject(table, injections or Injections(), KNOBS, seed)


KNOBS = Knobs(
    label="sepsis_within_12h",
    unit_changes={
        "lactate": lambda mmol_l: (mmol_l * 9.01).round(0),  # mmol/L -> mg/dL
        "temperature": lambda celsius: (celsius * 9 / 5 + 32).round(1),  # degC -> degF
    },
    rename=("heart_rate", "hr"),
    retype=("spo2", lambda pct: pct.map(lambda v: f"{v:.0f}%" if pd.notna(v) else v)),  # "97%" as text
)
