"""Who registered a model package and who approved it, and whether they are provably different people.

`DescribeModelPackage` returns `CreatedBy` (the author: the pipeline's registering identity) and
`LastModifiedBy` (the approver: `UpdateModelPackage` with `ModelApprovalStatus=Approved` is a modification).
Each is a `UserContext`: `IamIdentity` (`Arn`, `PrincipalId`, `SourceIdentity`), and for SageMaker Studio
users `UserProfileName`/`DomainId`.

What counts as a person, strongest first:
1. `SourceIdentity`: set by the identity provider at sign-in, and the session cannot change it;
2. a Studio user profile (domain + profile name): Studio users often share one execution role;
3. an IAM user.
An assumed-role session name alone is not a person: the caller chooses it. When neither side names a person
of the same kind, segregation holds only if author and approver acted through different roles.

Unknown identity is a refusal: we cannot prove segregation of duties, so we do not assume it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from clinops.exitcodes import SegregationOfDuties

_ASSUMED = re.compile(r"^arn:aws[a-z-]*:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/(.+)$")
_IAM = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):(user|role)/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)$")
# A role ARN as the platform's config and pipeline definitions accept it (paths allowed).
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_ROOT = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):root$")


@dataclass(frozen=True)
class Identity:
    """One side of the comparison, normalized. `principal` is `account:kind/name` (role paths dropped:
    assumed-role ARNs do not carry them)."""

    arn: str | None
    principal: str | None
    session: str | None
    source_identity: str | None
    studio_profile: str | None

    def person(self) -> tuple[str, str] | None:
        """The strongest person-level key and its kind."""
        if self.source_identity:
            return "source-identity", self.source_identity.lower()
        if self.studio_profile:
            return "studio-profile", self.studio_profile.lower()
        if self.principal and ":user/" in self.principal:
            return "iam-user", self.principal
        return None

    @property
    def role(self) -> str | None:
        return self.principal if self.principal and ":role/" in self.principal else None

    def describe(self) -> str:
        parts = [self.arn or "no IAM identity"]
        if self.source_identity:
            parts.append(f"source identity {self.source_identity}")
        if self.studio_profile:
            parts.append(f"Studio profile {self.studio_profile}")
        return ", ".join(parts)

    def as_evidence(self) -> dict[str, str | None]:
        return {"arn": self.arn, "source_identity": self.source_identity, "studio_profile": self.studio_profile}


def normalize_principal(arn: str) -> tuple[str | None, str | None]:
    """(principal, session) of an IAM/STS ARN: an assumed-role session becomes its role plus session name."""
    if match := _ASSUMED.match(arn):
        return f"{match.group(1)}:role/{match.group(2)}", match.group(3)
    if match := _IAM.match(arn):
        return f"{match.group(1)}:{match.group(2)}/{match.group(3)}", None
    if match := _ROOT.match(arn):
        return f"{match.group(1)}:root", None
    return None, None


def parse_user_context(context: dict[str, Any] | None) -> Identity | None:
    """Normalize a `UserContext`; None when it names nobody."""
    if not context:
        return None
    iam = context.get("IamIdentity") or {}
    arn = iam.get("Arn") or None
    principal, session = normalize_principal(arn) if arn else (None, None)
    profile = context.get("UserProfileName")
    studio = f"{context.get('DomainId') or '?'}/{profile}" if profile else None
    identity = Identity(arn, principal, session, iam.get("SourceIdentity") or None, studio)
    if identity.principal is None and identity.person() is None:
        return None
    return identity


def check_segregation(
    package: dict[str, Any], approver_principals: Iterable[str] = (), author_principals: Iterable[str] = ()
) -> tuple[Identity, Identity]:
    """Raise SegregationOfDuties unless author and approver are provably different people and the approver
    acted as a configured approver (when approvers are configured). Returns (author, approver)."""
    arn = package.get("ModelPackageArn", "?")
    author = parse_user_context(package.get("CreatedBy"))
    approver = parse_user_context(package.get("LastModifiedBy"))
    if author is None or approver is None:
        missing = "author (CreatedBy)" if author is None else "approver (LastModifiedBy)"
        raise SegregationOfDuties(
            f"{arn}: the {missing} identity is unknown, so segregation of duties cannot be proven; fix: register "
            "and approve through IAM roles or Studio profiles so SageMaker records who acted"
        )
    evidence = {"author": author.as_evidence(), "approver": approver.as_evidence()}
    person_a, person_b = author.person(), approver.person()
    if person_a and person_b and person_a[0] == person_b[0]:
        if person_a == person_b:
            raise SegregationOfDuties(
                f"{arn} was approved by its own author ({approver.describe()}); fix: a different clinical "
                "reviewer must approve it in the registry",
                evidence,
            )
    elif author.role and author.role == approver.role:
        raise SegregationOfDuties(
            f"{arn}: author and approver both acted as {author.role} with no person-level identity "
            f"(author {author.describe()}; approver {approver.describe()}), so they may be the same person; "
            "fix: approve as the clinical-governance role, or sign in with a source identity",
            evidence,
        )
    elif not (author.role or person_a) or not (approver.role or person_b):
        raise SegregationOfDuties(f"{arn}: cannot compare {author.describe()} with {approver.describe()}", evidence)
    _check_roles(arn, approver, list(approver_principals), list(author_principals), evidence)
    return author, approver


def _check_roles(
    arn: str, approver: Identity, approvers: list[str], authors: list[str], evidence: dict[str, Any]
) -> None:
    configured_authors = {normalize_principal(a)[0] for a in authors}
    if approver.principal in configured_authors:
        raise SegregationOfDuties(
            f"{arn} was approved by {approver.principal}, which is configured as an author role; fix: approve as "
            "a clinical-governance role (clinops:principals.approvers)",
            evidence,
        )
    configured = {normalize_principal(a)[0] for a in approvers}
    if configured and approver.principal not in configured:
        raise SegregationOfDuties(
            f"{arn} was approved by {approver.describe()}, which is not a configured approver "
            f"({', '.join(sorted(a for a in configured if a))}); fix: approve as one of them",
            evidence,
        )
