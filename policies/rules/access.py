"""Access control: least privilege, segregation of duties between personas, and a ceiling on every role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pulumi_policy import PolicyResource

from policies.controls import ACCESS_CONTROL, WORKFORCE_SECURITY
from policies.rules.base import UNKNOWN, Findings, StackView, as_list, rule
from policies.rules.documents import (
    BadDocument,
    covers_all_resources,
    parse_json,
    read_document,
    statements,
    unconditional_deny,
)

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
INLINE_DOCUMENT_TYPES = (ROLE_POLICY, POLICY, "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy")
ADMIN_POLICY_ARNS = ("arn:aws:iam::aws:policy/AdministratorAccess",)
PERSONA_TAG = "clinops:persona"
# IAM's size quotas (IAM User Guide, "IAM and AWS STS quotas"), in characters without white space: past them
# `pulumi up` fails with LimitExceeded halfway through the deploy.
ROLE_INLINE_CHARS = 10_240  # all inline policies of one role together
MANAGED_POLICY_CHARS = 6_144
TRUST_POLICY_CHARS = 2_048  # the default; AWS raises it to 4,096 on request

# Actions each persona must be denied outright (no condition, every resource), whatever else it is granted.
SEGREGATION: dict[str, tuple[str, ...]] = {
    "author": ("sagemaker:UpdateModelPackage",),  # an author cannot approve their own model
    "approver": ("sagemaker:CreateTrainingJob", "sagemaker:CreateModelPackage"),  # nor train what they approve
    "deployer": ("sagemaker:UpdateModelPackage",),  # nor approve what they release
}


def _documents(stack: StackView, findings: Findings, resource: PolicyResource) -> Iterator[tuple[str, Any]]:
    """(label, parsed document) for each policy document the resource carries itself."""
    props = stack.props(resource)
    raw: list[tuple[str, Any]] = []
    if resource.resource_type == ROLE:
        raw = [
            (f"inline policy {p.get('name', i)}", p.get("policy"))
            for i, p in enumerate(as_list(props.get("inlinePolicies")))
            if isinstance(p, dict)
        ]
    elif "policy" in props:
        raw = [("policy", props["policy"])]
    for label, value in raw:
        try:
            doc = parse_json(value)
        except BadDocument as exc:
            findings.fail(resource, f"'{resource.name}' {label} {exc}")
            continue
        if doc is UNKNOWN:
            findings.unknown(resource, label)
        elif doc is not None:
            yield label, doc


@rule(
    id="CLIN-IAM-001",
    title="No IAM statement allows every action on every resource",
    severity="critical",
    controls=(ACCESS_CONTROL,),
    types=(ROLE, *INLINE_DOCUMENT_TYPES, ATTACHMENT),
    fix="Replace the wildcard with the specific actions and resource ARNs the principal needs.",
)
def no_admin_statements(stack: StackView, findings: Findings) -> None:
    for resource in stack.of_type(ROLE, *INLINE_DOCUMENT_TYPES):
        for label, doc in _documents(stack, findings, resource):
            for statement in statements(doc):
                if statement.get("Effect") == "Allow" and covers_all_resources(statement) and _any_action(statement):
                    findings.fail(
                        resource,
                        f"'{resource.name}' {label} allows every action on every resource "
                        f"(statement {statement.get('Sid', 'without Sid')})",
                    )
    for attachment in stack.of_type(ATTACHMENT):
        if stack.props(attachment).get("policyArn") in ADMIN_POLICY_ARNS:
            findings.fail(attachment, f"'{attachment.name}' attaches AdministratorAccess")
    for role in stack.of_type(ROLE):
        for arn in as_list(stack.props(role).get("managedPolicyArns")):
            if arn in ADMIN_POLICY_ARNS:
                findings.fail(role, f"role '{role.name}' has AdministratorAccess in managedPolicyArns")


def _any_action(statement: dict[str, Any]) -> bool:
    """`Action: "*"` (or `*:*`), or `NotAction`, which allows everything but a short list."""
    return "NotAction" in statement or any(a in ("*", "*:*") for a in as_list(statement.get("Action")))


def _role_documents(stack: StackView, findings: Findings, role: PolicyResource) -> tuple[list[Any], bool]:
    """Every document that governs the role (inline, role policies, attached policies, boundary), and
    whether any of them is unknown until apply."""
    holders: list[PolicyResource] = [role, *stack.referencing(role, "role", ROLE_POLICY)]
    holders += stack.refs(role, "permissionsBoundary", POLICY) + stack.refs(role, "managedPolicyArns", POLICY)
    for attachment in stack.referencing(role, "role", ATTACHMENT):
        holders += stack.refs(attachment, "policyArn", POLICY)
    before = findings.unknown_count
    documents = [doc for holder in holders for _, doc in _documents(stack, findings, holder)]
    return documents, findings.unknown_count > before


@rule(
    id="CLIN-IAM-002",
    title="Persona roles carry segregation-of-duties denies",
    severity="high",
    controls=(WORKFORCE_SECURITY, ACCESS_CONTROL),
    types=(ROLE,),
    config=("personas",),
    reads=(ROLE_POLICY, POLICY, ATTACHMENT),
    fix="Tag each persona role clinops:persona=<author|approver|deployer> and add an unconditional Deny "
    "(Resource '*') of the actions that persona must never perform.",
)
def segregation_of_duties(stack: StackView, findings: Findings) -> None:
    roles = stack.of_type(ROLE)
    by_persona: dict[str, list[PolicyResource]] = {}
    for role in roles:
        tags = stack.props(role).get("tags")
        persona = tags.get(PERSONA_TAG) if isinstance(tags, dict) else None
        by_persona.setdefault(str(persona), []).append(role)
    for persona in stack.config["personas"]:
        if roles and not by_persona.get(persona):
            findings.fail(None, f"no role is tagged {PERSONA_TAG}={persona}, so its duties cannot be separated")
        for role in by_persona.get(persona, []):
            documents, incomplete = _role_documents(stack, findings, role)
            missing = [
                action
                for action in SEGREGATION[persona]
                if not any(unconditional_deny(s, action) for d in documents for s in statements(d))
            ]
            if missing and not incomplete:  # a document unknown until apply may hold the deny
                findings.fail(role, f"{persona} role '{role.name}' is not denied {', '.join(missing)}")


@rule(
    id="CLIN-IAM-003",
    title="Every role has a permissions boundary",
    severity="medium",
    controls=(ACCESS_CONTROL,),
    types=(ROLE,),
    fix="Set permissions_boundary=<the platform boundary policy>.arn on the role.",
)
def permissions_boundaries(stack: StackView, findings: Findings) -> None:
    for role in stack.of_type(ROLE):
        if not stack.props(role).get("permissionsBoundary"):
            findings.fail(role, f"role '{role.name}' has no permissions boundary: its policies are its only limit")


def policy_chars(doc: dict[str, Any]) -> int:
    """A document's size as IAM counts it: white space between JSON tokens does not count."""
    return len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False))


@rule(
    id="CLIN-IAM-004",
    title="IAM policies fit IAM's size quotas",
    severity="high",
    controls=(ACCESS_CONTROL,),
    types=(ROLE, ROLE_POLICY, POLICY),
    reads=(ROLE_POLICY,),
    fix="Grant by pattern instead of one ARN per model (e.g. the stack's name prefix), or split the duty across "
    "roles; a role's inline policies share 10,240 characters, a managed policy 6,144, a trust policy 2,048.",
)
def policy_size_quotas(stack: StackView, findings: Findings) -> None:
    for role in stack.of_type(ROLE):
        holders = [role, *stack.referencing(role, "role", ROLE_POLICY)]  # inlinePolicies and role policies
        used = sum(policy_chars(doc) for holder in holders for _, doc in _documents(stack, findings, holder))
        if used > ROLE_INLINE_CHARS:
            findings.fail(
                role,
                f"role '{role.name}' has {used:,} characters of inline policy; IAM allows "
                f"{ROLE_INLINE_CHARS:,} per role, so the deploy would fail",
            )
        trust = read_document(stack, findings, role, "assumeRolePolicy", f"'{role.name}' trust policy", role)
        if trust is not None and trust is not UNKNOWN and policy_chars(trust) > TRUST_POLICY_CHARS:
            findings.fail(
                role,
                f"role '{role.name}' has a {policy_chars(trust):,}-character trust policy; IAM "
                f"allows {TRUST_POLICY_CHARS:,} by default",
            )
    for managed in stack.of_type(POLICY):
        for _, doc in _documents(stack, findings, managed):
            if policy_chars(doc) > MANAGED_POLICY_CHARS:
                findings.fail(
                    managed,
                    f"managed policy '{managed.name}' has {policy_chars(doc):,} characters; IAM "
                    f"allows {MANAGED_POLICY_CHARS:,}",
                )


RULES = (no_admin_statements, segregation_of_duties, permissions_boundaries, policy_size_quotas)
