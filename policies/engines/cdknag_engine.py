"""Engine 3: cdk-nag's HIPAA Security pack over the plan's CloudFormation view (see cfnview).

cdk-nag 3 packs are validation plugins: the templates are loaded with `CfnInclude` into one CDK App (one
Stack per plan) and `HIPAASecurityChecks(app).validate_scope(app)` runs once for all plans, because the
jsii runtime start is the expensive part. The pack lists violations only; passed results are derived from
the rule table in cdknag_rules (rule applies to the type and did not fire).

No acknowledgments here: the gate applies the one exception register to all engines.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policies.engines.cdknag_rules import PACK, RULES, controls_of, rules_for
from policies.engines.cfnview import CfnView, build_cfn_view
from policies.model import CheckResult, EngineReport, Severity
from policies.plan import Plan

ENGINE = "cdk-nag"
MARKER = "RestrictDefaultSecurityGroupCustomResource"  # what the CDK L2 Vpc adds to close its default SG


def _import_cdk() -> tuple[Any, Any, Any, Any]:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk
    import cdk_nag
    import constructs
    from aws_cdk import cloudformation_include

    return aws_cdk, cloudformation_include, cdk_nag, constructs


def _include(libs: tuple[Any, ...], stack: Any, view: CfnView, folder: Path) -> None:
    """Load one view into `stack`. VPCs go into their own includes, one holding those whose default security
    group Pulumi empties next to the CDK marker VPCDefaultSecurityGroupClosed looks for (a sibling construct
    of the VPC), so the rule judges each VPC on its own. Other resources reach them through parameters."""
    cdk, inc, _, constructs = libs
    resources = dict(view.template["Resources"])
    params: dict[str, str] = {}
    for closed in (True, False):
        vpcs = {lid: resources.pop(lid) for lid, is_closed in view.vpcs.items() if is_closed is closed}
        if not vpcs:
            continue
        name = "ClosedDefaultSgVpcs" if closed else "Vpcs"
        path = folder / f"{stack.node.id}-{name}.json"
        path.write_text(json.dumps({"Resources": vpcs}))
        included = inc.CfnInclude(stack, name, template_file=str(path))
        if closed:
            marker = constructs.Construct(included, MARKER)  # the rule reads the marker's default child
            cdk.CfnResource(marker, "Default", type="Custom::VpcRestrictDefaultSG")
        params.update({f"{lid}Ref": included.get_resource(lid).ref for lid in vpcs})
    main = {"Parameters": {p: {"Type": "String"} for p in params}, "Resources": _via_params(resources, view)}
    path = folder / f"{stack.node.id}-Template.json"
    path.write_text(json.dumps(main))
    inc.CfnInclude(stack, "Template", template_file=str(path), parameters=params)


def _via_params(value: Any, view: CfnView) -> Any:
    """`{"Ref": vpc}` -> `{"Ref": "<vpc>Ref"}`: the VPC lives in another include."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in view.vpcs:
            return {"Ref": f"{value['Ref']}Ref"}
        return {k: _via_params(v, view) for k, v in value.items()}
    if isinstance(value, list):
        return [_via_params(v, view) for v in value]
    return value


def scan_plans(plans: Sequence[Plan]) -> list[EngineReport]:
    """One report per plan; one App, one validation for all of them."""
    _await_warm_up()  # jsii talks to its Node process over one channel: one caller at a time
    return _scan_plans(plans)


def _scan_plans(plans: Sequence[Plan]) -> list[EngineReport]:
    started = time.perf_counter()
    libs = _import_cdk()
    cdk, nag = libs[0], libs[2]
    app = cdk.App()
    views = [build_cfn_view(plan) for plan in plans]
    with tempfile.TemporaryDirectory(prefix="clinops-cdknag-") as tmp:
        for i, view in enumerate(views):
            _include(libs, cdk.Stack(app, f"Plan{i}"), view, Path(tmp))
        report = nag.HIPAASecurityChecks(app).validate_scope(app)
    fired: dict[tuple[int, str], dict[str, str]] = {}  # (plan, logical id) -> rule id -> message
    for violation in report.violations:
        for res in violation.violating_resources:
            stack_id, *_, lid = res.construct_path.split("/")
            fired.setdefault((int(stack_id.removeprefix("Plan")), lid), {})[violation.rule_name] = violation.description
    seconds = round((time.perf_counter() - started) / max(len(views), 1), 3)
    return [_report(plan, view, i, fired, seconds) for i, (plan, view) in enumerate(zip(plans, views, strict=True))]


def scan(plan: Plan) -> EngineReport:
    return scan_plans([plan])[0]


def warm_up() -> None:
    """Pay the jsii start (Node loading aws-cdk-lib, CfnInclude and the pack: ~2-4 s cold) ahead of time.
    Most of it runs in the Node process, so a gate can call this in a thread while checkov runs."""
    scan_plans([Plan(resources=[], config={}, stack="warm-up", project="clinops")])


_warming: threading.Thread | None = None
_warming_lock = threading.Lock()


def start_warm_up() -> None:
    """`warm_up` in a thread of its own, once per process, so it overlaps with what the caller does next (a
    render is single-threaded Python: the Node side has the other core). The next scan waits for it; a warm-up
    that fails leaves nothing behind, and the scan then meets the same failure and reports it."""
    global _warming
    with _warming_lock:
        if _warming is None:
            _warming = threading.Thread(target=_warm_up_quietly, name="cdk-nag-warm-up", daemon=True)
            _warming.start()


def _warm_up_quietly() -> None:
    try:
        _scan_plans([Plan(resources=[], config={}, stack="warm-up", project="clinops")])
    except Exception:  # the real scan meets it again and reports it through the gate
        return


def _await_warm_up() -> None:
    warming = _warming
    if warming is not None and warming is not threading.current_thread():
        warming.join()


def _result(rule_id: str, urn: str, pulumi_type: str, message: str | None) -> CheckResult:
    base = rule_id.removeprefix(PACK + "-").split("[")[0]
    rule = RULES.get(base)
    severity: Severity = rule.severity if rule else "high"  # unknown to the table: judge it seriously
    controls = controls_of(message or "") or (controls_of(rule.citations) if rule else ())
    return CheckResult(
        engine=ENGINE,
        rule_id=rule_id,
        title=base,
        severity=severity,
        controls=controls,
        urn=urn,
        resource_type=pulumi_type,
        status="passed" if message is None else "failed",
        message=message or "",
        fix=f"see https://github.com/cdklabs/cdk-nag/blob/main/RULES.md ({base})" if message else "",
    )


def _report(
    plan: Plan, view: CfnView, index: int, fired: dict[tuple[int, str], dict[str, str]], seconds: float
) -> EngineReport:
    by_key: dict[tuple[str, str], CheckResult] = {}
    for lid, urn in view.urn_by_logical_id.items():
        cfn_type = view.template["Resources"][lid]["Type"]
        failures = fired.get((index, lid), {})
        outcomes = {f"{PACK}-{name}": None for name in rules_for(cfn_type)} | failures
        for rule_id, message in outcomes.items():
            key = (rule_id, urn)  # several CloudFormation resources per URN (routes): any failure wins
            if key not in by_key or message is not None:
                by_key[key] = _result(rule_id, urn, view.type_by_logical_id[lid], message)
    results = sorted(by_key.values(), key=CheckResult.sort_key)
    return EngineReport(
        engine=ENGINE,
        results=results,
        coverage=_coverage(plan, view, results),
        seconds=seconds,
        notes=_notes(plan, view),
    )


def _coverage(plan: Plan, view: CfnView, results: list[CheckResult]) -> dict[str, str]:
    judged = {r.urn for r in results}
    seen = {plan.by_urn[u].type for u in judged}
    seen |= {plan.by_urn[u].type for u, lid in view.judged_via.items() if view.urn_by_logical_id.get(lid) in judged}
    types = {r.type for r in plan.resources if r.custom and not r.type.startswith("pulumi:")}
    return {t: "seen" if t in seen else "unseen" for t in sorted(types)}


def _notes(plan: Plan, view: CfnView) -> list[str]:
    why: dict[str, set[str]] = {}
    for urn, reason in view.unconverted.items():
        why.setdefault(f"{plan.by_urn[urn].type}: {reason}", set()).add(urn)
    return [f"{k} ({len(v)} resource{'s' if len(v) > 1 else ''})" for k, v in sorted(why.items())]
