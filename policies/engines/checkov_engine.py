"""Engine 2: checkov's Terraform-plan checks over the plan's Terraform view (see tfview).

Every finding, passed and failed, is returned on its Pulumi URN. No skips here: the gate applies the one
exception register to all three engines, so each waiver is recorded once, with its reason, in the evidence.
checkov runs in a process of its own (checkov_worker), started on first use or by `start_worker()`: it is
CPU-bound Python, and beside the gate's other engines it would hold their GIL. `clinops --help` never starts it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from policies import controls as c
from policies.engines.tfview import TF_TYPES, UNKNOWN, TfView, write_tf_view
from policies.model import CheckResult, EngineReport, Severity, Status
from policies.plan import Plan

ENGINE = "checkov"
ROOT = Path(__file__).resolve().parents[2]
WORKER_MODULE = "policies.engines.checkov_worker"
# Errors of a plan whose inputs checkov cannot read: re-raised as themselves, so the gate reports unusable input.
READ_ERRORS: dict[str, type[Exception]] = {
    e.__name__: e for e in (AttributeError, TypeError, KeyError, ValueError, IndexError)
}


def _ids(ids: str, value: Any) -> dict[str, Any]:
    return dict.fromkeys(ids.split(), value)


# Check id -> HIPAA controls, for the checks that judge what this platform deploys.
CONTROLS: dict[str, tuple[str, ...]] = {
    **_ids(
        "CKV_AWS_19 CKV_AWS_145 CKV_AWS_7 CKV_AWS_33 CKV_AWS_227 CKV_AWS_158 CKV_AWS_26 CKV_AWS_98 CKV_AWS_187 "
        "CKV_AWS_136 CKV_AWS_173 CKV_AWS_27 CKV_AWS_337 CKV2_AWS_34 CKV2_AWS_64",
        (c.ENCRYPTION,),
    ),
    **_ids(
        "CKV_AWS_18 CKV2_AWS_11 CKV2_AWS_10 CKV_AWS_67 CKV_AWS_252 CKV_AWS_66 CKV_AWS_338 CKV_AWS_50 CKV_AWS_251",
        (c.AUDIT,),
    ),
    "CKV_AWS_35": (c.ENCRYPTION, c.AUDIT),  # trail logs encrypted with a CMK
    "CKV_AWS_36": (c.AUDIT, c.INTEGRITY),  # trail log file validation
    **_ids("CKV_AWS_21 CKV_AWS_144 CKV2_AWS_61", (c.INTEGRITY, c.CONTINGENCY)),
    **_ids(
        "CKV_AWS_23 CKV_AWS_24 CKV_AWS_25 CKV_AWS_260 CKV_AWS_277 CKV_AWS_382 CKV2_AWS_5 CKV2_AWS_12 "
        "CKV_AWS_130 CKV_AWS_370 CKV_AWS_117",
        (c.ACCESS_CONTROL, c.TRANSMISSION),
    ),
    **_ids(
        "CKV2_AWS_6 CKV_AWS_53 CKV_AWS_54 CKV_AWS_55 CKV_AWS_56 CKV_AWS_20 CKV_AWS_57 CKV_AWS_70 CKV_AWS_93 "
        "CKV2_AWS_65 CKV_AWS_60 CKV_AWS_61 CKV_AWS_62 CKV_AWS_63 CKV_AWS_274 CKV_AWS_286 CKV_AWS_287 "
        "CKV_AWS_288 CKV_AWS_289 CKV_AWS_290 CKV_AWS_355 CKV2_AWS_40 CKV2_AWS_56",
        (c.ACCESS_CONTROL,),
    ),
}
# checkov's own category when the table has no entry (its TLS/transport checks are NETWORKING).
CATEGORY_CONTROLS: dict[str, tuple[str, ...]] = {
    "ENCRYPTION": (c.ENCRYPTION,),
    "LOGGING": (c.AUDIT,),
    "IAM": (c.ACCESS_CONTROL,),
    "NETWORKING": (c.ACCESS_CONTROL, c.TRANSMISSION),
    "BACKUP_AND_RECOVERY": (c.CONTINGENCY,),
}
# No table entry and no telling category: no control. The report lists such checks under "unmapped" rather
# than claiming they evidence access control.
DEFAULT_CONTROLS: tuple[str, ...] = ()
# Transport checks are spread over checkov's categories; their names say what they are.
TRANSPORT = re.compile(r"\b(TLS|SSL|HTTPS)\b(?!:)|in transit|SecureTransport", re.IGNORECASE)

DOCUMENTS = ("policy", "assumeRolePolicy", "accessPolicies")  # JSON-document inputs checks read

# checkov offline carries no severities (they come from the Prisma platform): ours, default "medium".
SEVERITY: dict[str, Severity] = {
    **_ids(
        "CKV_AWS_24 CKV_AWS_25 CKV_AWS_277 CKV_AWS_260 CKV_AWS_62 CKV_AWS_70 CKV2_AWS_6 CKV_AWS_20 CKV_AWS_57",
        "critical",
    ),
    **_ids(
        "CKV_AWS_19 CKV_AWS_145 CKV_AWS_98 CKV_AWS_187 CKV_AWS_7 CKV_AWS_33 CKV_AWS_35 CKV_AWS_36 CKV_AWS_67 "
        "CKV_AWS_18 CKV2_AWS_11 CKV2_AWS_10 CKV_AWS_53 CKV_AWS_54 CKV_AWS_55 CKV_AWS_56 CKV_AWS_158 CKV_AWS_26 "
        "CKV_AWS_63 CKV_AWS_286 CKV_AWS_287 CKV_AWS_288 CKV_AWS_289 CKV_AWS_290 CKV_AWS_355 CKV2_AWS_40 "
        "CKV_AWS_370 CKV_AWS_382 CKV_AWS_23 CKV_AWS_130",
        "high",
    ),
    **_ids(
        "CKV2_AWS_62 CKV_AWS_144 CKV2_AWS_61 CKV_AWS_252 CKV_AWS_338 CKV_AWS_116 CKV_AWS_115 CKV_AWS_272 "
        "CKV_AWS_50 CKV_AWS_319 CKV2_AWS_5",
        "low",
    ),
}


def _result(record: dict[str, Any], view: TfView, cats: dict[str, str], defaulted: set[str]) -> CheckResult | None:
    """One checkov record (as the worker sends it) on its URN, with our controls and severity."""
    address, check_id, name = record["resource"], record["check_id"], record["check_name"]
    urn = view.urn_by_address.get(address)
    if urn is None:
        return None  # not one of ours (e.g. a provider block): nothing on the plan to attach it to
    controls = CONTROLS.get(check_id)
    if controls is None and TRANSPORT.search(name or ""):
        controls = (c.TRANSMISSION,)
    controls = controls or CATEGORY_CONTROLS.get(cats.get(check_id, ""))
    if controls is None:
        controls = DEFAULT_CONTROLS
        defaulted.add(check_id)
    status: Status = "passed" if record["status"] == "passed" else "failed"
    message = "" if status == "passed" else f"{name} (Terraform view: {address})"
    return CheckResult(
        engine=ENGINE,
        rule_id=check_id,
        title=name,
        severity=SEVERITY.get(check_id, "medium"),
        controls=controls,
        urn=urn,
        resource_type=view.type_by_address[address],
        status=status,
        message=message,
        fix=record["guideline"] or "",
    )


class _Worker:
    """The checkov process (checkov_worker) and its pipes. Requests are one at a time (a lock)."""

    def __init__(self) -> None:
        env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "True"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE],
            cwd=ROOT,  # this checkout's policies package, whichever directory the gate runs from
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lock = threading.Lock()
        self.owner = os.getpid()

    def alive(self) -> bool:
        """Running, and ours: a forked child of the gate's process must not share its parent's pipes."""
        return self.owner == os.getpid() and self.process.poll() is None

    def scan(self, views: list[Path], checks: list[str] | None) -> list[dict[str, Any]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        with self.lock:
            try:
                self.process.stdin.write(json.dumps({"views": [str(v) for v in views], "checks": checks}) + "\n")
                self.process.stdin.flush()
                line = self.process.stdout.readline()
            except OSError:
                line = ""
        if not line:
            raise RuntimeError(
                f"the checkov worker ({WORKER_MODULE}) exited with code {self.process.wait()}; its error is on "
                "stderr above. Fix: run `python -m policies.engines.checkov_worker` to see it import checkov"
            )
        answer = json.loads(line)
        if "error" in answer:
            raise _reraised(answer["error"])
        views_answer: list[dict[str, Any]] = answer["views"]
        return views_answer

    def stop(self) -> None:
        if self.owner != os.getpid():
            return  # the parent's worker, inherited by a fork: the parent stops it
        if self.process.stdin is not None:
            # The worker ends at end of input; a broken pipe means it has ended already.
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def start_worker() -> None:
    """Start checkov's process now (its import, about 2 s, runs while the caller does other work). One per
    process, reused by every scan; it holds checkov's code only, never a result."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.alive():
            _worker = _Worker()
            atexit.register(_worker.stop)


def _scan_views(views: list[Path], checks: list[str] | None) -> list[dict[str, Any]]:
    start_worker()
    assert _worker is not None
    return _worker.scan(views, checks)


def _reraised(error: dict[str, Any]) -> Exception:
    """The worker's exception as the nearest built-in read error (the gate reports a plan an engine cannot read
    as unusable input), anything else as a RuntimeError carrying the worker's traceback."""
    kind = next((READ_ERRORS[k] for k in error["kinds"] if k in READ_ERRORS), None)
    if kind is not None:
        return kind(error["message"] if kind.__name__ == error["type"] else f"{error['type']}: {error['message']}")
    return RuntimeError(f"checkov failed: {error['type']}: {error['message']}\n{error['trace']}")


def scan_plans(plans: Iterable[Plan], checks: list[str] | None = None) -> list[EngineReport]:
    """One report per plan, all scanned by one request to the checkov worker. `checks` limits the run to some
    check ids (tests); None runs them all. The first report's time includes waiting for checkov's import."""
    started = time.perf_counter()
    plans = list(plans)
    with tempfile.TemporaryDirectory(prefix="clinops-checkov-") as tmp:
        paths = [Path(tmp) / f"tfplan-{i}.json" for i in range(len(plans))]
        views = [write_tf_view(plan, path, indent=None) for plan, path in zip(plans, paths, strict=True)]
        answers = _scan_views(paths, checks)
    # The first report also carries what no single view took: writing the views, waiting for checkov's import.
    overhead = time.perf_counter() - started - sum(a["seconds"] for a in answers)
    reports = []
    for i, (plan, view, answer) in enumerate(zip(plans, views, answers, strict=True)):
        t0 = time.perf_counter()
        report = _report(plan, view, answer)
        seconds = answer["seconds"] + time.perf_counter() - t0 + (overhead if i == 0 else 0.0)
        reports.append(EngineReport(report.engine, report.results, report.coverage, round(seconds, 3), report.notes))
    return reports


def _report(plan: Plan, view: TfView, answer: dict[str, Any]) -> EngineReport:
    cats: dict[str, str] = answer["categories"]
    defaulted: set[str] = set()
    blind = _unknown_documents(plan)
    results = [
        res
        for rec in answer["records"]
        if (res := _result(rec, view, cats, defaulted)) is not None
        and not (res.status == "passed" and res.urn in blind)
    ]
    results.sort(key=CheckResult.sort_key)
    connected = {t for check in {r.rule_id for r in results} for t in answer["connected"].get(check, ())}
    coverage = _coverage(plan, view, results, connected)
    return EngineReport(ENGINE, results, coverage, 0.0, _notes(view, defaulted, blind))


def scan(plan: Plan, checks: list[str] | None = None) -> EngineReport:
    return scan_plans([plan], checks)[0]


def warm_up() -> None:
    """Start checkov's process ahead of time (its import: about 2 s with bytecode cached, 6-7 s without)."""
    start_worker()


def _coverage(plan: Plan, view: TfView, results: list[CheckResult], connected: set[str]) -> dict[str, str]:
    """A type is seen when some check evaluated a resource of it (directly or as a connection)."""
    seen = {r.resource_type for r in results}
    seen |= {view.type_by_address[a] for a in view.type_by_address if a.split(".")[0] in connected}
    types = {r.type for r in plan.resources if r.custom and not r.type.startswith("pulumi:")}
    return {t: "seen" if t in seen else "unseen" for t in sorted(types)}


def _unknown_documents(plan: Plan) -> set[str]:
    """URNs whose policy document is unknown until apply (a real preview of values computed from outputs).
    checkov passes a missing document vacuously, so passes on these resources are withheld."""
    return {r.urn for r in plan.resources if any(r.inputs.get(d) == UNKNOWN for d in DOCUMENTS)}


def _notes(view: TfView, defaulted: set[str], blind: set[str]) -> list[str]:
    notes = [f"{t}: no Terraform equivalent ({why})" for t, why in sorted(view.skipped.items())]
    notes += [
        f"{t}: mapped to {tf} by the generic rule (not in TF_TYPES)"
        for t, tf in sorted(view.generic.items())
        if t not in TF_TYPES
    ]
    if blind:
        notes.append(f"passes withheld on {len(blind)} resource(s) whose policy document is unknown until apply")
    if defaulted:
        notes.append(f"not mapped to a HIPAA control (no table entry): {', '.join(sorted(defaulted))}")
    return notes
