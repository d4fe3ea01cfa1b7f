"""Run IAM simulations in one Node process: `@cloud-copilot/iam-simulate` (AGPL-3.0), pinned in
`policies/engines/iam/package-lock.json` and installed by `make venv` (`npm ci`).

It is a separate program fed JSON on stdin, not a library linked into clinops, and it runs only in CI and on
developer machines. All simulations of a gate run go in one batch: Node start and policy parsing are paid once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).resolve().parent / "iam"
SCRIPT = FOLDER / "evaluate.mjs"
PACKAGE = FOLDER / "node_modules" / "@cloud-copilot" / "iam-simulate"
TIMEOUT_SECONDS = 120


class EvaluatorUnavailable(Exception):
    """Node or the pinned evaluator is missing: the gate cannot judge access and says how to fix it."""


@dataclass(frozen=True)
class Decision:
    result: str  # Allowed | ImplicitlyDenied | ExplicitlyDenied | Error
    layers: dict[str, str]  # identity/resource/boundary/endpoint -> that layer's result
    allow: tuple[str, ...]  # deciding allow statements, "<layer>:<policy>:<sid>"
    deny: tuple[str, ...]  # deciding deny statements
    errors: Any = None
    ignored: tuple[str, ...] = ()  # context keys the evaluator does not accept for this action

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"


class Evaluator:
    """One evaluator process, started at construction so that Node loads while the caller prepares the batch."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise EvaluatorUnavailable("node is not on PATH; fix: install Node 20 (it also runs cdk-nag)")
        if not PACKAGE.is_dir():
            raise EvaluatorUnavailable(
                f"the IAM evaluator is not installed ({PACKAGE} is missing); fix: `make venv`, which runs "
                "`npm ci --prefix policies/engines/iam`"
            )
        self._process = subprocess.Popen(
            [node, str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=FOLDER,
        )

    def evaluate(self, simulations: list[dict[str, Any]]) -> list[Decision]:
        """One decision per simulation, in order; the process answers once and exits."""
        try:
            out, err = self._process.communicate(json.dumps(simulations), timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise EvaluatorUnavailable(f"the IAM evaluator did not answer within {TIMEOUT_SECONDS} s") from None
        if self._process.returncode != 0:
            raise EvaluatorUnavailable(
                f"the IAM evaluator failed (exit {self._process.returncode}): {err.strip()[-800:]}"
            )
        answers = json.loads(out)
        if len(answers) != len(simulations):
            raise EvaluatorUnavailable(f"the IAM evaluator answered {len(answers)} of {len(simulations)} simulations")
        return [
            Decision(
                result=a["result"],
                layers=dict(a.get("layers") or {}),
                allow=tuple(a.get("allow") or ()),
                deny=tuple(a.get("deny") or ()),
                errors=a.get("errors"),
                ignored=tuple(a.get("ignored") or ()),
            )
            for a in answers
        ]

    def close(self) -> None:
        """Stop the process if it is still waiting (the caller failed before sending the batch)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def evaluate(simulations: list[dict[str, Any]]) -> list[Decision]:
    """One decision per simulation, in order. Raises EvaluatorUnavailable when it cannot run at all."""
    return Evaluator().evaluate(simulations)
