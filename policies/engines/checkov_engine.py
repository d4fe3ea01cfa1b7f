"""Engine 2: checkov's Terraform-plan checks over the plan's Terraform view (see tfview).

Every finding, passed and failed, is returned on its Pulumi URN. No skips here: the gate applies the one
exception register to all three engines, so each waiver is recorded once, with its reason, in the evidence.
checkov is imported on first use (about 2 s with bytecode cached): `clinops --help` must not pay for it.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from policies import controls as c
from policies.engines.tfview import TF_TYPES, UNKNOWN, TfView, write_tf_view
from policies.model import CheckResult, EngineReport, Severity, Status
from policies.plan import Plan

ENGINE = "checkov"


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


def _import_checkov() -> tuple[Any, Any, Any]:
    os.environ.setdefault("CKV_SKIP_PACKAGE_UPDATE_CHECK", "True")  # else checkov calls the index on import
    # Threads, not forked workers: ~35% faster here, and no fork of a process that may already run the
    # jsii (cdk-nag) and Pulumi gRPC threads. Read once, when checkov is imported.
    os.environ.setdefault("CHECKOV_PARALLELIZATION_TYPE", "thread")
    logging.getLogger("checkov").setLevel(logging.ERROR)
    from checkov.runner_filter import RunnerFilter
    from checkov.terraform.checks.resource.registry import resource_registry
    from checkov.terraform.plan_runner import Runner

    return Runner, RunnerFilter, resource_registry


def _categories(runner: Any, resource_registry: Any) -> dict[str, str]:
    cats = {ck.id: ck.categories[0].name for cks in resource_registry.checks.values() for ck in cks if ck.categories}
    cats.update({ck.id: str(ck.category) for ck in runner.graph_registry.checks if ck.category})
    return cats


def _result(record: Any, status: Status, view: TfView, cats: dict[str, str], defaulted: set[str]) -> CheckResult | None:
    urn = view.urn_by_address.get(record.resource)
    if urn is None:
        return None  # not one of ours (e.g. a provider block): nothing on the plan to attach it to
    controls = CONTROLS.get(record.check_id)
    if controls is None and TRANSPORT.search(record.check_name or ""):
        controls = (c.TRANSMISSION,)
    controls = controls or CATEGORY_CONTROLS.get(cats.get(record.check_id, ""))
    if controls is None:
        controls = DEFAULT_CONTROLS
        defaulted.add(record.check_id)
    message = "" if status == "passed" else f"{record.check_name} (Terraform view: {record.resource})"
    return CheckResult(
        engine=ENGINE,
        rule_id=record.check_id,
        title=record.check_name,
        severity=SEVERITY.get(record.check_id, "medium"),
        controls=controls,
        urn=urn,
        resource_type=view.type_by_address[record.resource],
        status=status,
        message=message,
        fix=record.guideline or "",
    )


def scan_plans(plans: Iterable[Plan], checks: list[str] | None = None) -> list[EngineReport]:
    """One report per plan. `checks` limits the run to some check ids (tests); None runs them all."""
    started = time.perf_counter()
    runner_cls, filter_cls, resource_registry = _import_checkov()
    reports = []
    first = True
    for plan in plans:
        t0 = started if first else time.perf_counter()  # the first report carries the import cost
        first = False
        with tempfile.TemporaryDirectory(prefix="clinops-checkov-") as tmp:
            view = write_tf_view(plan, Path(tmp) / "tfplan.json", indent=None)
            runner = runner_cls()
            report = runner.run(
                root_folder=None,
                files=[str(Path(tmp) / "tfplan.json")],
                runner_filter=filter_cls(framework=["terraform_plan"], checks=checks),
            )
        cats = _categories(runner, resource_registry)
        defaulted: set[str] = set()
        blind = _unknown_documents(plan)
        outcomes: list[tuple[Status, list[Any]]] = [("passed", report.passed_checks), ("failed", report.failed_checks)]
        results = [
            res
            for status, records in outcomes
            for rec in records
            if (res := _result(rec, status, view, cats, defaulted)) is not None
            and not (status == "passed" and res.urn in blind)
        ]
        results.sort(key=CheckResult.sort_key)
        coverage = _coverage(plan, view, results, _connected_types(runner, {r.rule_id for r in results}))
        seconds = round(time.perf_counter() - t0, 3)
        reports.append(EngineReport(ENGINE, results, coverage, seconds, _notes(view, defaulted, blind)))
    return reports


def scan(plan: Plan, checks: list[str] | None = None) -> EngineReport:
    return scan_plans([plan], checks)[0]


def warm_up() -> None:
    """Import checkov ahead of time (about 2 s with bytecode cached, 6-7 s without)."""
    _import_checkov()


def _connected_types(runner: Any, check_ids: set[str]) -> set[str]:
    """Terraform types that graph checks which ran read through a connection (the flow log of a VPC, the
    encryption configuration of a bucket): their findings land on the VPC or bucket, but they were judged."""
    found: set[str] = set()
    stack = [ck for ck in runner.graph_registry.checks if ck.id in check_ids]
    while stack:
        ck = stack.pop()
        found.update(ck.connected_resources_types or ())
        stack.extend(ck.sub_checks or ())
    return found


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
