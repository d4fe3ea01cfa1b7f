"""The private CDS Hooks API (infra/cds_api.py): reachable only through the platform's execute-api VPC endpoint,
its calls logged and throttled. One function per rule; each docstring says what a violation would let happen.
"""

from __future__ import annotations

from typing import Any

from policies.controls import ACCESS_CONTROL, AUDIT, TRANSMISSION
from policies.rules.base import UNKNOWN, Findings, StackView, as_list, rule
from policies.rules.documents import BadDocument, parse_json, statements

REST_API = "aws:apigateway/restApi:RestApi"
REST_API_POLICY = "aws:apigateway/restApiPolicy:RestApiPolicy"
STAGE = "aws:apigateway/stage:Stage"
METHOD_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"


@rule(
    id="CLIN-API-001",
    title="APIs are private: no edge or regional endpoint",
    severity="critical",
    controls=(ACCESS_CONTROL, TRANSMISSION),
    types=(REST_API,),
    fix="endpoint_configuration={'types': 'PRIVATE', 'vpc_endpoint_ids': [the platform's execute-api endpoint]}.",
)
def apis_are_private(stack: StackView, findings: Findings) -> None:
    """An EDGE or REGIONAL API answers from the internet: patient data would leave the hospital's network."""
    for api in stack.of_type(REST_API):
        config = stack.props(api).get("endpointConfiguration")
        if config == UNKNOWN:
            findings.unknown(api, "endpointConfiguration")
            continue
        types = as_list((config or {}).get("types")) if isinstance(config, dict) else []
        if types != ["PRIVATE"]:
            findings.fail(api, f"API '{api.name}' endpoint types are {types or ['EDGE (default)']}, not PRIVATE")


def _allows_outside_the_endpoint(statement: dict[str, Any]) -> bool:
    """An Allow of execute-api:Invoke with no aws:SourceVpce/SourceVpc pin lets any network call it."""
    if statement.get("Effect") != "Allow":
        return False
    raw = statement.get("Condition")
    condition: dict[str, Any] = raw if isinstance(raw, dict) else {}
    pinned = any(
        isinstance(entries, dict) and {"aws:SourceVpce", "aws:SourceVpc"} & set(entries)
        for operator, entries in condition.items()
        if operator.startswith("String") and not operator.startswith("StringNot")
    )
    return not pinned


@rule(
    id="CLIN-API-002",
    title="API resource policies admit calls only through the platform's VPC endpoint",
    severity="critical",
    controls=(ACCESS_CONTROL,),
    types=(REST_API_POLICY, REST_API),
    fix="Allow execute-api:Invoke only with StringEquals aws:SourceVpce = the execute-api endpoint; deny the rest.",
)
def api_policies_pin_the_endpoint(stack: StackView, findings: Findings) -> None:
    """Without the pin, any VPC endpoint in any account (or a misrouted network) may call the clinical API."""
    policies = stack.of_type(REST_API_POLICY)
    for api in stack.of_type(REST_API):
        if not [p for p in policies if api.urn in {r.urn for r in stack.refs(p, "restApiId", REST_API)}]:
            findings.fail(
                api, f"API '{api.name}' has no resource policy: every caller the endpoint type allows gets in"
            )
    for policy in policies:
        document = stack.props(policy).get("policy")
        if document == UNKNOWN:
            findings.unknown(policy, "policy")
            continue
        try:
            parsed = statements(parse_json(document))
        except BadDocument as exc:
            findings.fail(policy, f"{policy.name}.policy {exc}")
            continue
        for i, statement in enumerate(parsed):
            if _allows_outside_the_endpoint(statement):
                findings.fail(
                    policy,
                    f"{policy.name} statement {statement.get('Sid') or i} allows calls not pinned "
                    "to a VPC endpoint (aws:SourceVpce)",
                )


@rule(
    id="CLIN-API-003",
    title="API stages log every call and are throttled",
    severity="high",
    controls=(AUDIT,),
    types=(STAGE, METHOD_SETTINGS),
    fix="Stage access_log_settings to a KMS log group; a MethodSettings '*/*' with throttling limits.",
)
def api_stages_logged_and_throttled(stack: StackView, findings: Findings) -> None:
    """No access log: no record of which EHR asked about which service; no throttle: one client starves the rest."""
    settings = stack.of_type(METHOD_SETTINGS)
    for stage in stack.of_type(STAGE):
        props = stack.props(stage)
        logs = props.get("accessLogSettings")
        if logs != UNKNOWN and not (isinstance(logs, dict) and logs.get("destinationArn")):
            findings.fail(stage, f"stage '{stage.name}' has no access log destination")
        throttled = [
            s
            for s in settings
            if isinstance(stack.props(s).get("settings"), dict)
            and stack.props(s)["settings"].get("throttlingRateLimit", -1) not in (-1, None)
            and stack.props(s)["settings"].get("throttlingBurstLimit", -1) not in (-1, None)
        ]
        if not throttled:
            findings.fail(stage, f"stage '{stage.name}' has no throttling (MethodSettings with rate and burst limits)")


RULES = (apis_are_private, api_policies_pin_the_endpoint, api_stages_logged_and_throttled)
