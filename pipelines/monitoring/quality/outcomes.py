"""Read adjudicated outcome files and join them to captured inferences by inference ID.

Outcome files are CSV with `inference_id`, `outcome` (1/0, true/false, yes/no) and `outcome_time` (when the
outcome was adjudicated; optional). Corrections happen: when one inference has several outcome rows, the latest
by `outcome_time` wins and conflicting duplicates are counted. An inference without an outcome is *pending*,
never a negative: a readmission is known only after follow-up and adjudication. Counts of every kind of
problem are reported; no identifier or value is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.errors import InputError
from pipelines.monitoring.drift.sources import S3Location, list_local_files, list_s3_keys, s3_client

REQUIRED = ("inference_id", "outcome")
_POSITIVE, _NEGATIVE = {"1", "1.0", "true", "t", "yes", "y"}, {"0", "0.0", "false", "f", "no", "n"}


def _parse_outcome(value: Any) -> float:
    text = str(value).strip().lower()
    return 1.0 if text in _POSITIVE else 0.0 if text in _NEGATIVE else float("nan")


def _read_csv(source: Any, name: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"outcome file {name} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(
            f"outcome file {name} lacks column(s) {', '.join(missing)}; expected {', '.join(REQUIRED)}, outcome_time"
        )
    return frame


def read_outcome_frames(source: str, client: Any | None = None) -> list[pd.DataFrame]:
    if source.startswith("s3://"):
        location = S3Location.parse(source)
        client = client or s3_client()
        keys = list_s3_keys(client, location, suffixes=(".csv",))
        return [_read_csv(client.get_object(Bucket=location.bucket, Key=k)["Body"], k) for k in keys]
    path = Path(source)
    files = list_local_files(path, (".csv",)) if path.is_dir() else [path] if path.is_file() else []
    if not files:
        raise InputError(f"no outcome CSV at {source}; pass --outcomes to a CSV, a folder of CSVs or an s3:// prefix")
    return [_read_csv(f, str(f)) for f in files]


@dataclass
class Outcomes:
    frame: pd.DataFrame  # inference_id, outcome (0/1), outcome_time
    issues: Counter[str] = field(default_factory=Counter)


def clean_outcomes(frames: list[pd.DataFrame]) -> Outcomes:
    raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(REQUIRED))
    issues: Counter[str] = Counter()
    raw["inference_id"] = raw["inference_id"].astype("string").str.strip()
    no_id = raw["inference_id"].isna() | (raw["inference_id"] == "")
    issues["missing_inference_id"] += int(no_id.sum())
    raw = raw[~no_id].copy()
    raw["outcome"] = raw["outcome"].map(_parse_outcome)
    unreadable = raw["outcome"].isna()
    issues["outcome_unreadable"] += int(unreadable.sum())
    raw = raw[~unreadable]
    times = raw["outcome_time"] if "outcome_time" in raw.columns else pd.Series(pd.NaT, index=raw.index)
    raw = raw.assign(outcome_time=pd.to_datetime(times, errors="coerce", utc=True))
    raw = raw.sort_values("outcome_time", kind="stable", na_position="first")
    per_id = raw.groupby("inference_id")["outcome"].nunique()
    issues["conflicting_duplicates"] += int((per_id > 1).sum())
    issues["duplicates"] += int(raw["inference_id"].duplicated().sum())
    latest = raw.drop_duplicates("inference_id", keep="last")  # corrections arrive later: the last word wins
    frame = latest[["inference_id", "outcome", "outcome_time"]].astype({"outcome": int}).reset_index(drop=True)
    return Outcomes(frame, Counter({k: v for k, v in issues.items() if v}))


@dataclass
class Joined:
    labelled: pd.DataFrame  # one row per inference with an outcome: score, inference_time, outcome, attributes
    inferences: pd.DataFrame  # every usable inference (for label coverage per window)
    counts: dict[str, int]


def join_outcomes(inferences: pd.DataFrame, outcomes: Outcomes) -> Joined:
    frame = inferences.copy()
    counts: Counter[str] = Counter(outcomes.issues)
    frame["inference_time"] = pd.to_datetime(frame["inference_time"], errors="coerce", utc=True)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    unusable = frame["inference_id"].isna() | frame["inference_time"].isna() | frame["score"].isna()
    counts["inferences_unusable"] += int(unusable.sum())
    frame = frame[~unusable]
    counts["inferences_duplicated"] += int(frame["inference_id"].duplicated().sum())
    frame = frame.drop_duplicates("inference_id", keep="first")  # a retried request is one prediction
    frame = frame.assign(inference_id=frame["inference_id"].astype(str))
    labelled = frame.merge(outcomes.frame, on="inference_id", how="inner", validate="one_to_one")
    counts["inferences"] = len(frame)
    counts["labelled"] = len(labelled)
    counts["pending"] = len(frame) - len(labelled)
    counts["orphan_outcomes"] = int((~outcomes.frame["inference_id"].isin(frame["inference_id"])).sum())
    return Joined(labelled.reset_index(drop=True), frame.reset_index(drop=True), dict(counts))
