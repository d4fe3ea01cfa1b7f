"""Step 1 - validate the extract against its contract; stop before training if it breaks it.

Writes the de-identified table (PHI dropped or tokenized) and the contract report. Exit code 1 if the data
violates the contract, 2 if it is unusable (no rows, one-class label); the report is written either way.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from clinops.exitcodes import ExitCode
from pipelines.contracts import Contract, load_contract
from pipelines.contracts.validate import ContractReport, validate_frame
from pipelines.errors import InputError
from pipelines.jobio import PROCESSING, dataset_sha256, read_raw_table, report_failure, write_json, write_table

log = logging.getLogger("clinops.pipeline.validate")
TOKEN_KEY_ENV = "CLINOPS_PHI_TOKEN_KEY"


@dataclass
class Validated:
    report: ContractReport
    table: pd.DataFrame | None  # None unless the report passed


def token_key() -> bytes:
    """The tokenization key: a managed secret in production; without one, tokens only link rows within a run."""
    configured = os.environ.get(TOKEN_KEY_ENV)
    return configured.encode() if configured else secrets.token_bytes(32)


def validate(raw: pd.DataFrame, contract: Contract, *, as_of: date, key: bytes | None = None) -> Validated:
    report, table = validate_frame(raw, contract, as_of=as_of, token_key=key or token_key())
    log.info(
        "contract %s v%s: %s (%d rows, %d issues)",
        contract.name,
        contract.version,
        report.status,
        report.rows,
        len(report.issues),
    )
    return Validated(report, table)


def write_report(report: ContractReport, directory: Path, dataset_hash: str) -> None:
    write_json(report.to_dict() | {"dataset_sha256": dataset_hash}, directory / "contract-report.json")
    (directory / "contract-report.md").write_text(report.to_markdown())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=PROCESSING / "input/data")
    parser.add_argument("--contract", default=PROCESSING / "input/contract")
    parser.add_argument("--output", type=Path, default=PROCESSING / "output/validated")
    parser.add_argument("--report", type=Path, default=PROCESSING / "output/report")
    parser.add_argument("--as-of", type=date.fromisoformat, default=datetime.now(UTC).date())
    args = parser.parse_args(argv)
    try:
        contract = load_contract(args.contract)
        raw = read_raw_table(args.data, contract.text_columns)
        digest = dataset_sha256(args.data)
    except InputError as exc:
        report_failure(str(exc))
        print(exc, file=sys.stderr)
        return ExitCode.UNUSABLE_INPUT
    result = validate(raw, contract, as_of=args.as_of)
    write_report(result.report, args.report, digest)
    if result.table is None:
        message = "contract violated: " + "; ".join(result.report.reasons())
        report_failure(message)
        print(result.report.to_markdown(), file=sys.stderr)
        return ExitCode.UNUSABLE_INPUT if result.report.status == "unusable" else ExitCode.FAILED
    write_table(result.table, args.output / "validated.parquet")
    write_json({"dataset_sha256": digest, "contract_version": contract.version}, args.output / "lineage.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
