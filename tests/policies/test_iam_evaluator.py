"""The IAM evaluator's transport: each distinct policy goes once in a table, identical simulations are evaluated
once, and every simulation still gets its own decision, in order, as if it had been sent whole."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from policies.engines import iam_evaluator
from policies.engines.iam_evaluator import Batch

ACCOUNT = "111111111111"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
READ = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::data/*"}],
}
WRITE = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Write", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::data/*"}],
}


def simulation(
    action: str = "s3:GetObject", identity: list[tuple[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "request": {
            "principal": ROLE,
            "action": action,
            "resource": {"resource": "arn:aws:s3:::data/report.csv", "accountId": ACCOUNT},
            "contextVariables": {"aws:PrincipalAccount": ACCOUNT},
        },
        "identityPolicies": [{"name": n, "policy": p} for n, p in (identity or [("read", READ)])],
        "serviceControlPolicies": [],
        "resourceControlPolicies": [],
        **extra,
    }


def test_each_distinct_policy_is_sent_once_and_named_by_index() -> None:
    same_content = copy.deepcopy(READ)  # another object, equal JSON: the same policy
    sims = [
        simulation(identity=[("read", READ)]),
        simulation("s3:PutObject", identity=[("read", same_content), ("write", WRITE)]),
        simulation(
            "s3:DeleteObject", identity=[("write", WRITE)], permissionBoundaryPolicies=[{"name": "b", "policy": READ}]
        ),
    ]
    batch = Batch(sims)
    assert batch.policies == [READ, WRITE]
    assert [s["identityPolicies"] for s in batch.distinct] == [
        [["read", 0]],
        [["read", 0], ["write", 1]],
        [["write", 1]],
    ]
    assert batch.distinct[2]["permissionBoundaryPolicies"] == [["b", 0]]
    assert batch.distinct[0]["request"] == sims[0]["request"]
    payload = json.loads(batch.payload())
    assert payload == {"policies": [READ, WRITE], "simulations": batch.distinct}
    assert len(batch.payload()) < len(json.dumps(sims))


def test_identical_simulations_are_evaluated_once_and_each_answered_in_order() -> None:
    sims = [simulation(), simulation("s3:PutObject"), copy.deepcopy(simulation())]
    evaluator = iam_evaluator.Evaluator()
    decisions = evaluator.evaluate(sims)
    assert evaluator.batch is not None and len(evaluator.batch.distinct) == 2 and evaluator.batch.order == [0, 1, 0]
    assert [d.result for d in decisions] == ["Allowed", "ImplicitlyDenied", "Allowed"]
    assert decisions[0].allow == ("identity:read:Read",)


def test_simulations_differing_only_in_a_policy_or_its_name_are_not_merged() -> None:
    widened = copy.deepcopy(READ)
    widened["Statement"][0]["Action"] = ["s3:GetObject", "s3:PutObject"]
    sims = [
        simulation("s3:PutObject", identity=[("read", READ)]),
        simulation("s3:PutObject", identity=[("read", widened)]),
        simulation("s3:PutObject", identity=[("renamed", widened)]),
    ]
    evaluator = iam_evaluator.Evaluator()
    decisions = evaluator.evaluate(sims)
    assert evaluator.batch is not None and len(evaluator.batch.distinct) == 3
    assert [d.result for d in decisions] == ["ImplicitlyDenied", "Allowed", "Allowed"]
    assert [d.allow for d in decisions[1:]] == [("identity:read:Read",), ("identity:renamed:Read",)]


def test_one_document_is_validated_for_each_role_it_plays() -> None:
    """A statement with a Principal is a valid resource policy and an invalid identity policy: the evaluator
    validates a shared document once per role, not once for all."""
    bucket_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "App",
                "Effect": "Allow",
                "Principal": {"AWS": ROLE},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::data/*",
            }
        ],
    }
    as_resource = simulation(identity=[("read", READ)], resourcePolicy=bucket_policy)
    as_identity = simulation(identity=[("misplaced", bucket_policy)], resourcePolicy=bucket_policy)
    decisions = iam_evaluator.evaluate([as_resource, as_identity])
    assert decisions[0].result == "Allowed" and decisions[0].layers["resource"] == "Allowed"
    assert decisions[1].result == "Error" and "misplaced" in decisions[1].errors["identityPolicyErrors"]


@pytest.mark.parametrize(
    ("operator", "result"),
    [
        ("StringEquals", "Allowed"),
        ("stringequals", "Allowed"),  # operators compare case-insensitively
        ("STRINGEQUALSIFEXISTS", "Allowed"),
        ("foranyvalue:StringEquals", "Allowed"),
        ("StringÉquals", "Error"),  # but not accent-insensitively: the evaluator's shared collator keeps that
        ("forányvalue:StringEquals", "Error"),
    ],
)
def test_condition_operators_compare_as_the_library_defines(operator: str, result: str) -> None:
    policy = copy.deepcopy(READ)
    policy["Statement"][0]["Condition"] = {operator: {"aws:PrincipalAccount": ACCOUNT}}
    (decision,) = iam_evaluator.evaluate([simulation(identity=[("read", policy)])])
    assert decision.result == result, decision.errors


def test_a_reference_outside_the_policy_table_is_refused_by_name() -> None:
    evaluator = iam_evaluator.Evaluator()
    broken = {"policies": [READ], "simulations": [{**Batch([simulation()]).distinct[0], "resourcePolicy": 3}]}
    with pytest.raises(iam_evaluator.EvaluatorUnavailable, match="policy reference 3 is not in the batch's table of 1"):
        evaluator._send(json.dumps(broken), 1)
