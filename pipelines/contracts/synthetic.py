"""Synthetic, de-identified canary requests built from a model's feature contract (no data file needed).

Values sit inside each column's declared range or categories, so a healthy model must score them; a model
that fails them is broken, not confused by odd data. Deterministic by seed, so the payload never churns
the Lambda's configuration between deploys.
"""

from __future__ import annotations

import random

from pipelines.contracts import Contract, load_contract
from pipelines.contracts.loader import builtin_contract_path


def synthetic_rows(contract: Contract, rows: int = 5, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for _ in range(rows):
        record: dict[str, object] = {}
        for name in contract.feature_columns:
            spec = contract.columns[name]
            if spec.categories:
                record[name] = rng.choice(spec.categories)
            elif spec.dtype == "boolean":
                record[name] = rng.choice([0, 1])
            else:
                low, high = spec.range or (0.0, 1.0)
                # skewed toward the low end of the physiological range, where most patients are
                value = rng.triangular(low, high, low + (high - low) * 0.2)
                record[name] = round(value) if spec.dtype == "integer" else round(value, 2)
        out.append(record)
    return out


def canary_payload_csv(model_name: str, rows: int = 5) -> str:
    """CSV body (header + rows) the canary sends; raises FileNotFoundError when the model has no contract."""
    path = builtin_contract_path(model_name)
    if not path.exists():
        raise FileNotFoundError(f"model {model_name} has no feature contract at {path}")
    contract = load_contract(path)
    records = synthetic_rows(contract, rows)
    header = contract.feature_columns
    lines = [",".join(header)] + [",".join(str(r[c]) for c in header) for r in records]
    return "\n".join(lines) + "\n"
