"""Run IAM simulations in one Node process: `@cloud-copilot/iam-simulate` (AGPL-3.0), pinned in
`policies/engines/iam/package-lock.json` and installed by `make venv` (`npm ci`).

It is a separate program fed JSON on stdin, not a library linked into clinops, and it runs only in CI and on
developer machines. All simulations of a gate run go in one batch: Node start and policy parsing are paid once.

The batch is sent as a table: each distinct policy document once, and simulations that name their policies by
index into it (a 50-model stack repeats the same few hundred policies across ~2,000 simulations, 29 MB inline
against ~1.5 MB as a table). Identical simulations are evaluated once.
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


# Simulation fields holding a list of {name, policy} entries, and the field holding one bare resource policy.
POLICY_LISTS = ("identityPolicies", "permissionBoundaryPolicies", "vpcEndpointPolicies")
RESOURCE_POLICY = "resourcePolicy"


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
        self.batch: Batch | None = None  # the last batch sent (its table and distinct simulations, for reports)

    def evaluate(self, simulations: list[dict[str, Any]]) -> list[Decision]:
        """One decision per simulation, in order; the process answers once and exits."""
        batch = Batch(simulations)
        self.batch = batch
        answers = self._send(batch.payload(), len(batch.distinct))
        return [answers[i] for i in batch.order]

    def _send(self, payload: str, expected: int) -> list[Decision]:
        try:
            out, err = self._process.communicate(payload, timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise EvaluatorUnavailable(f"the IAM evaluator did not answer within {TIMEOUT_SECONDS} s") from None
        if self._process.returncode != 0:
            raise EvaluatorUnavailable(
                f"the IAM evaluator failed (exit {self._process.returncode}): {err.strip()[-800:]}"
            )
        answers = json.loads(out)
        if len(answers) != expected:
            raise EvaluatorUnavailable(f"the IAM evaluator answered {len(answers)} of {expected} simulations")
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


class Batch:
    """Simulations as the evaluator reads them: a policy table and distinct simulations naming policies by index.

    Policies are told apart by content (their JSON with sorted keys), so two simulations are the same exactly when
    their full JSON is; each document object is serialised once however many simulations share it."""

    def __init__(self, simulations: list[dict[str, Any]]) -> None:
        self.policies: list[Any] = []
        self._by_text: dict[str, int] = {}
        # id() is safe as a key: every document stays referenced by `simulations` while the batch is built
        self._by_object: dict[int, int] = {}
        self.distinct: list[dict[str, Any]] = []
        self.order: list[int] = []  # simulation i is answered by distinct[order[i]]
        seen: dict[str, int] = {}
        for simulation in simulations:
            compact = self._compact(simulation)
            key = json.dumps(compact, sort_keys=True)
            index = seen.get(key)
            if index is None:
                index = seen[key] = len(self.distinct)
                self.distinct.append(compact)
            self.order.append(index)

    def _policy(self, document: Any) -> int:
        index = self._by_object.get(id(document))
        if index is None:
            text = json.dumps(document, sort_keys=True)
            index = self._by_text.get(text)
            if index is None:
                index = self._by_text[text] = len(self.policies)
                self.policies.append(document)
            self._by_object[id(document)] = index
        return index

    def _compact(self, simulation: dict[str, Any]) -> dict[str, Any]:
        compact = dict(simulation)
        for field in POLICY_LISTS:
            if simulation.get(field) is not None:
                compact[field] = [[entry["name"], self._policy(entry["policy"])] for entry in simulation[field]]
        if simulation.get(RESOURCE_POLICY) is not None:
            compact[RESOURCE_POLICY] = self._policy(simulation[RESOURCE_POLICY])
        return compact

    def payload(self) -> str:
        return json.dumps({"policies": self.policies, "simulations": self.distinct})


def evaluate(simulations: list[dict[str, Any]]) -> list[Decision]:
    """One decision per simulation, in order. Raises EvaluatorUnavailable when it cannot run at all."""
    return Evaluator().evaluate(simulations)
