"""Security properties of the rendered platform, on every stack — and each shown to fail when broken."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.conftest import rendered

Plan = dict


def states(plan: Plan, type_: str) -> list[dict]:
    return [s["newState"] for s in plan["steps"] if s["newState"]["type"] == type_]


def named(plan: Plan, suffix: str) -> dict:
    return next(s["newState"] for s in plan["steps"] if s["urn"].endswith(suffix))


def no_internet_path(plan: Plan) -> list[str]:
    bad = [
        s["urn"]
        for t in ("aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway")
        for s in states(plan, t)
    ]
    for rt in states(plan, "aws:ec2/routeTable:RouteTable"):
        bad += [rt["urn"] for r in rt["inputs"].get("routes", []) if r.get("cidrBlock") == "0.0.0.0/0"]
    bad += [s["urn"] for s in states(plan, "aws:ec2/subnet:Subnet") if s["inputs"].get("mapPublicIpOnLaunch")]
    return bad


def buckets_encrypted_with_their_key(plan: Plan) -> list[str]:
    expected = {
        "phi-data": "phi-key",
        "model-artifacts": "artifacts-key",
        "data-capture": "phi-key",
        "evidence": "audit-key",
        "access-logs": None,  # SSE-S3: S3 documents SSE-KMS as unsupported for access-log target buckets
    }
    bad = []
    for sse in states(plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"):
        bucket = sse["propertyDependencies"]["bucket"][0].split("::")[-1]
        rule = sse["inputs"]["rules"][0]["applyServerSideEncryptionByDefault"]
        keys = [u.split("::")[-1] for u in sse["propertyDependencies"].get("rules", [])]
        if expected[bucket] is None:
            ok = rule == {"sseAlgorithm": "AES256"} and not keys
        else:
            ok = (
                rule["sseAlgorithm"] == "aws:kms"
                and keys == [expected[bucket]]
                and sse["inputs"]["rules"][0]["bucketKeyEnabled"]
            )
        bad += [] if ok else [sse["urn"]]
    return bad if len(states(plan, "aws:s3/bucket:Bucket")) == 5 else ["bucket count"]


def keys_rotate(plan: Plan) -> list[str]:
    """Every encryption key rotates. The HMAC keys cannot (KMS rotates symmetric encryption keys only): the
    evidence key and the CDS encounter key are the reviewed exceptions (policies/exceptions.yaml), and they must
    stay MAC-only keys."""
    keys = states(plan, "aws:kms/key:Key")
    hmac = [k for k in keys if k["inputs"].get("customerMasterKeySpec") == "HMAC_256"]
    bad = [k["urn"] for k in hmac if not k["urn"].endswith(("::evidence-mac-key", "::cds-encounter-mac-key"))]
    bad += [k["urn"] for k in hmac if k["inputs"].get("keyUsage") != "GENERATE_VERIFY_MAC"]
    return bad + [k["urn"] for k in keys if k not in hmac and k["inputs"].get("enableKeyRotation") is not True]


def public_access_blocked(plan: Plan) -> list[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    pabs = states(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    return [p["urn"] for p in pabs if not all(p["inputs"].get(f) for f in flags)] or ([] if len(pabs) == 5 else ["n"])


def tls_only_buckets(plan: Plan) -> list[str]:
    bad = []
    for pol in states(plan, "aws:s3/bucketPolicy:BucketPolicy"):
        doc = json.loads(pol["inputs"]["policy"])
        if not any(
            s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in doc["Statement"]
        ):
            bad.append(pol["urn"])
    return bad


def _role_statements(plan: Plan, persona: str) -> list[dict]:
    pol = named(plan, f"aws:iam/rolePolicy:RolePolicy::{persona}-permissions")
    return json.loads(pol["inputs"]["policy"])["Statement"]


def segregation_of_duties(plan: Plan) -> list[str]:
    def denies(persona: str, action: str) -> bool:
        return any(
            s["Effect"] == "Deny" and action in s["Action"] and "Condition" not in s
            for s in _role_statements(plan, persona)
        )

    required = [
        ("author", "sagemaker:UpdateModelPackage"),
        ("approver", "sagemaker:CreateTrainingJob"),
        ("approver", "sagemaker:CreateModelPackage"),
        ("deployer", "sagemaker:UpdateModelPackage"),
    ]
    return [f"{p} may {a}" for p, a in required if not denies(p, a)]


def boundaries_everywhere(plan: Plan) -> list[str]:
    return [r["urn"] for r in states(plan, "aws:iam/role:Role") if not r["inputs"].get("permissionsBoundary")]


def no_star_star(plan: Plan) -> list[str]:
    bad = []
    for pol in states(plan, "aws:iam/rolePolicy:RolePolicy") + states(plan, "aws:iam/policy:Policy"):
        for s in json.loads(pol["inputs"]["policy"])["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            if s["Effect"] == "Allow" and "*" in actions and s.get("Resource") == "*":
                bad.append(pol["urn"])
    return bad


def flow_logs_on_vpc(plan: Plan) -> list[str]:
    vpcs = {v["urn"] for v in states(plan, "aws:ec2/vpc:Vpc")}
    watched = {
        f["propertyDependencies"]["vpcId"][0]
        for f in states(plan, "aws:ec2/flowLog:FlowLog")
        if f["inputs"]["trafficType"] == "ALL"
    }
    return sorted(vpcs - watched)


def endpoints_private(plan: Plan) -> list[str]:
    cidr = plan["config"]["clinops:vpcCidr"]
    sg = named(plan, "SecurityGroup::endpoint-security-group")
    bad = [sg["urn"] for rule in sg["inputs"]["ingress"] if rule["cidrBlocks"] != [cidr] or rule["fromPort"] != 443]
    dsg = states(plan, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")[0]
    bad += [dsg["urn"]] if dsg["inputs"].get("ingress") or dsg["inputs"].get("egress") else []
    eps = [e for e in states(plan, "aws:ec2/vpcEndpoint:VpcEndpoint") if e["inputs"]["vpcEndpointType"] == "Interface"]
    bad += [e["urn"] for e in eps if not e["inputs"].get("privateDnsEnabled")]
    return bad + ([] if len(eps) >= 12 else ["too few interface endpoints"])


def evidence_locked(plan: Plan) -> list[str]:
    lock = states(plan, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    days = int(plan["config"]["clinops:evidenceRetentionDays"])
    ok = len(lock) == 1 and lock[0]["inputs"]["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": days}
    return [] if ok else ["evidence bucket lock"]


def audit_trail(plan: Plan) -> list[str]:
    trails = states(plan, "aws:cloudtrail/trail:Trail")
    keys = ("isMultiRegionTrail", "enableLogFileValidation", "kmsKeyId", "cloudWatchLogsGroupArn")
    return [t["urn"] for t in trails if not all(t["inputs"].get(k) for k in keys)] or ([] if trails else ["no trail"])


def log_groups_encrypted(plan: Plan) -> list[str]:
    days = int(plan["config"]["clinops:logRetentionDays"])
    return [
        g["urn"]
        for g in states(plan, "aws:cloudwatch/logGroup:LogGroup")
        if not g["propertyDependencies"].get("kmsKeyId") or g["inputs"]["retentionInDays"] != days
    ]


def studio_vpc_only(plan: Plan) -> list[str]:
    return [
        d["urn"]
        for d in states(plan, "aws:sagemaker/domain:Domain")
        if d["inputs"]["appNetworkAccessType"] != "VpcOnly" or not d["inputs"].get("kmsKeyId")
    ]


def _mutate(type_or_suffix: str, fn: Callable[[dict], None]) -> Callable[[Plan], None]:
    def breaker(plan: Plan) -> None:
        target = next(
            s["newState"]
            for s in plan["steps"]
            if s["newState"]["type"] == type_or_suffix or s["urn"].endswith(type_or_suffix)
        )
        fn(target)

    return breaker


def _add_igw(plan: Plan) -> None:
    plan["steps"].append(
        {
            "op": "create",
            "urn": "urn:x::igw",
            "newState": {
                "type": "aws:ec2/internetGateway:InternetGateway",
                "urn": "urn:x::igw",
                "inputs": {},
                "parent": "",
                "dependencies": [],
                "propertyDependencies": {},
            },
        }
    )


def _drop(type_: str) -> Callable[[Plan], None]:
    def breaker(plan: Plan) -> None:
        plan["steps"] = [s for s in plan["steps"] if s["newState"]["type"] != type_]

    return breaker


def _edit_policy(suffix: str, edit: Callable[[list[dict]], list[dict]]) -> Callable[[Plan], None]:
    def fn(state: dict) -> None:
        doc = json.loads(state["inputs"]["policy"])
        doc["Statement"] = edit(doc["Statement"])
        state["inputs"]["policy"] = json.dumps(doc)

    return _mutate(suffix, fn)


PROPERTIES: dict[str, tuple[Callable[[Plan], list[str]], list[Callable[[Plan], None]]]] = {
    "no internet path": (
        no_internet_path,
        [
            _add_igw,
            _mutate(
                "aws:ec2/routeTable:RouteTable", lambda s: s["inputs"]["routes"].append({"cidrBlock": "0.0.0.0/0"})
            ),
            _mutate("aws:ec2/subnet:Subnet", lambda s: s["inputs"].update(mapPublicIpOnLaunch=True)),
        ],
    ),
    "buckets encrypted with their own key": (
        buckets_encrypted_with_their_key,
        [
            _mutate(
                "BucketServerSideEncryptionConfiguration::phi-data-encryption",
                lambda s: s["propertyDependencies"].update(
                    rules=[s["propertyDependencies"]["rules"][0].replace("phi-key", "artifacts-key")]
                ),
            ),
            _mutate(
                "BucketServerSideEncryptionConfiguration::evidence-encryption",
                lambda s: s["inputs"]["rules"][0]["applyServerSideEncryptionByDefault"].update(sseAlgorithm="AES256"),
            ),
        ],
    ),
    "kms rotation": (keys_rotate, [_mutate("aws:kms/key:Key", lambda s: s["inputs"].update(enableKeyRotation=False))]),
    "public access blocked": (
        public_access_blocked,
        [
            _mutate(
                "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                lambda s: s["inputs"].update(restrictPublicBuckets=False),
            )
        ],
    ),
    "tls-only bucket policies": (
        tls_only_buckets,
        [
            _edit_policy(
                "BucketPolicy::evidence-policy", lambda st: [s for s in st if s["Sid"] != "DenyInsecureTransport"]
            )
        ],
    ),
    "segregation of duties": (
        segregation_of_duties,
        [
            _edit_policy(
                "RolePolicy::author-permissions", lambda st: [s for s in st if s["Sid"] != "SodAuthorsCannotApprove"]
            ),
            _edit_policy(
                "RolePolicy::approver-permissions", lambda st: [s for s in st if s["Sid"] != "SodApproversCannotBuild"]
            ),
            _edit_policy(
                "RolePolicy::deployer-permissions",
                lambda st: [s for s in st if s["Sid"] != "SodDeployersCannotApprove"],
            ),
        ],
    ),
    "permissions boundary on every role": (
        boundaries_everywhere,
        [_mutate("aws:iam/role:Role", lambda s: s["inputs"].pop("permissionsBoundary"))],
    ),
    "no * on *": (
        no_star_star,
        [
            _edit_policy(
                "RolePolicy::deployer-permissions",
                lambda st: [*st, {"Effect": "Allow", "Action": "*", "Resource": "*"}],
            )
        ],
    ),
    "flow logs on the vpc": (flow_logs_on_vpc, [_drop("aws:ec2/flowLog:FlowLog")]),
    "endpoints private": (
        endpoints_private,
        [
            _mutate(
                "SecurityGroup::endpoint-security-group",
                lambda s: s["inputs"]["ingress"][0].update(cidrBlocks=["0.0.0.0/0"]),
            ),
            _mutate(
                "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
                lambda s: s["inputs"].update(ingress=[{"protocol": "-1"}]),
            ),
            _mutate("VpcEndpoint::endpoint-sagemaker-api", lambda s: s["inputs"].update(privateDnsEnabled=False)),
        ],
    ),
    "evidence object lock": (
        evidence_locked,
        [
            _mutate(
                "BucketObjectLockConfiguration::evidence-object-lock",
                lambda s: s["inputs"]["rule"]["defaultRetention"].update(mode="GOVERNANCE"),
            )
        ],
    ),
    "audit trail": (
        audit_trail,
        [
            _mutate("aws:cloudtrail/trail:Trail", lambda s: s["inputs"].update(enableLogFileValidation=False)),
            _drop("aws:cloudtrail/trail:Trail"),
        ],
    ),
    "log groups encrypted, retained": (
        log_groups_encrypted,
        [
            _mutate("LogGroup::flow-logs", lambda s: s["propertyDependencies"].pop("kmsKeyId")),
            _mutate("LogGroup::cloudtrail-logs", lambda s: s["inputs"].update(retentionInDays=1)),
        ],
    ),
    "studio vpc only": (
        studio_vpc_only,
        [
            _mutate(
                "aws:sagemaker/domain:Domain", lambda s: s["inputs"].update(appNetworkAccessType="PublicInternetOnly")
            )
        ],
    ),
}


@pytest.mark.parametrize("prop", sorted(PROPERTIES))
def test_property_holds_on_every_stack(prop: str, stack_plan: tuple[str, Plan]) -> None:
    check, _ = PROPERTIES[prop]
    assert check(stack_plan[1]) == []


@pytest.mark.parametrize(("prop", "i"), [(p, i) for p, (_, bs) in sorted(PROPERTIES.items()) for i in range(len(bs))])
def test_property_fails_on_broken_variant(prop: str, i: int) -> None:
    check, breakers = PROPERTIES[prop]
    plan = rendered("prod")
    breakers[i](plan)
    assert check(plan), f"{prop}: breaker {i} went unnoticed"


def test_stateful_resources_protected_in_prod_only() -> None:
    for stack, expected in (("prod", True), ("dev", False)):
        plan = rendered(stack)
        stateful = [
            s["newState"] for s in plan["steps"] if s["newState"]["type"] in ("aws:s3/bucket:Bucket", "aws:kms/key:Key")
        ]
        assert stateful and all(s["retainOnDelete"] == expected and s["protect"] == expected for s in stateful)


def test_key_usage_names_exact_principals_not_the_account() -> None:
    plan = rendered("prod")
    for key in states(plan, "aws:kms/key:Key"):
        for s in json.loads(key["inputs"]["policy"])["Statement"]:
            if s["Sid"] == "KeyAdministration":
                assert not any(a in s["Action"] for a in ("kms:Decrypt", "kms:Encrypt", "kms:*"))
            elif s["Principal"].get("AWS") == "*":  # roles created after the key: exact ARNs, never a pattern
                condition = s["Condition"]
                named = condition.get("ArnEquals", condition["StringEquals"])["aws:PrincipalArn"]
                assert named and all(a.startswith("arn:aws:iam::333333333333:role/clinops-prod-") for a in named)
                assert not any("*" in a or "?" in a for a in named)
                assert condition["StringEquals"]["kms:CallerAccount"] == "333333333333"
                assert "ArnLike" not in condition
                # a pattern only for the schedule the target role decrypts (any of this stack's schedules)
                assert set(condition.get("StringLike", {})) <= {"kms:EncryptionContext:aws:scheduler:schedule-arn"}
            elif "AWS" in s["Principal"]:
                assert all(
                    ":role/" in p or (p.endswith(":root") and "333333333333" not in p)
                    for p in (
                        [s["Principal"]["AWS"]] if isinstance(s["Principal"]["AWS"], str) else s["Principal"]["AWS"]
                    )
                )


def test_registry_only_in_build_account_with_cross_account_read() -> None:
    dev, prod = rendered("dev"), rendered("prod")
    assert len(states(dev, "aws:sagemaker/modelPackageGroup:ModelPackageGroup")) == 2
    assert not states(prod, "aws:sagemaker/modelPackageGroup:ModelPackageGroup")
    policy = json.loads(
        states(dev, "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy")[0]["inputs"]["resourcePolicy"]
    )
    assert policy["Statement"][0]["Principal"]["AWS"] == [
        "arn:aws:iam::222222222222:root",
        "arn:aws:iam::333333333333:root",
    ]
