"""Reading JSON documents carried as string inputs: IAM/S3 policies and SageMaker pipeline definitions."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any

from pulumi_policy import PolicyResource

from policies.rules.base import UNKNOWN, Findings, StackView, as_list


class BadDocument(ValueError):
    """The input is neither a JSON object nor a JSON string of one."""


def parse_json(value: Any) -> Any:
    """A document input as a dict: Pulumi accepts both a JSON string and an object. None if absent."""
    if value is None or value is UNKNOWN or isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            doc = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadDocument(f"is not valid JSON ({exc.msg})") from None
        if isinstance(doc, dict):
            return doc
    raise BadDocument("is not a JSON object")


def read_document(
    stack: StackView, findings: Findings, resource: PolicyResource, prop: str, label: str, blame: PolicyResource
) -> Any:
    """The document in input `prop` of `resource`: parsed, UNKNOWN when it is known only at apply (recorded as
    such), or None when absent or malformed (malformed fails `blame` with `label` and the reason)."""
    try:
        doc = parse_json(stack.props(resource).get(prop))
    except BadDocument as exc:
        findings.fail(blame, f"{label} {exc}")
        return None
    if doc is UNKNOWN:
        findings.unknown(resource, prop)
    return doc


def statements(doc: Any) -> list[dict[str, Any]]:
    """The statements of a policy document (a single statement may be given as an object)."""
    if not isinstance(doc, dict):
        return []
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, dict)]


def action_matches(pattern: str, action: str) -> bool:
    """IAM action matching: case-insensitive, `*` and `?` wildcards."""
    return fnmatchcase(action.lower(), pattern.lower())


def covers_action(statement: dict[str, Any], action: str) -> bool:
    """Whether the statement applies to `action` (through `Action`, or by not excluding it via `NotAction`)."""
    if "NotAction" in statement:
        return not any(action_matches(str(p), action) for p in as_list(statement["NotAction"]))
    return any(action_matches(str(p), action) for p in as_list(statement.get("Action")))


def covers_all_resources(statement: dict[str, Any]) -> bool:
    if "NotResource" in statement:
        return True  # "everything except ..." is as broad as "*" for the purpose of least privilege
    return "*" in as_list(statement.get("Resource"))


def unconditional_deny(statement: dict[str, Any], action: str) -> bool:
    """A Deny of `action` on every resource with no condition: nothing an Allow elsewhere can get around."""
    return (
        statement.get("Effect") == "Deny"
        and "Condition" not in statement
        and covers_all_resources(statement)
        and covers_action(statement, action)
    )


def public_principal(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    return principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS")))


def denies_insecure_transport(statement: dict[str, Any]) -> bool:
    """`Deny` every principal `s3:*` when `aws:SecureTransport` is false: the S3 TLS-only pattern."""
    if statement.get("Effect") != "Deny" or not public_principal(statement):
        return False
    if not covers_action(statement, "s3:GetObject") or not covers_action(statement, "s3:PutObject"):
        return False
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return False
    for operator in ("Bool", "BoolIfExists"):
        values = as_list((condition.get(operator) or {}).get("aws:SecureTransport"))
        if any(str(v).lower() == "false" for v in values):
            return True
    return False
