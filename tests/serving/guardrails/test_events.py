"""The exported EventBridge patterns, judged by EventBridge itself (moto: rule -> SQS target), and the parsers."""

from __future__ import annotations

import json
from typing import Any

from serving.guardrails.events import alarm_event_pattern, parse_alarm_event, retraining_event_pattern
from tests.serving.conftest import ENDPOINT, MODEL, STACK, T0, alarm_event


def delivered(pool: dict[str, Any], pattern: dict[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    bus, sqs = pool["events"], pool["sqs"]
    queue = sqs.create_queue(QueueName="target")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus.put_rule(Name="rule", EventPattern=json.dumps(pattern))
    bus.put_targets(Rule="rule", Targets=[{"Id": "target", "Arn": arn}])
    for event in events:
        entry = {"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}
        bus.put_events(Entries=[entry])
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"])["detail"] for m in messages]


def test_the_breaker_pattern_passes_only_this_stacks_alarms_entering_alarm(aws: None, pool: dict[str, Any]) -> None:
    events = [
        alarm_event("1", f"{ENDPOINT}-drift"),
        alarm_event("2", f"{ENDPOINT}-drift", state="OK"),
        alarm_event("3", "clinops-staging-readmission-risk-drift"),
        alarm_event("4", f"{ENDPOINT}-5xx-rate"),
    ]
    passed = delivered(pool, alarm_event_pattern(f"clinops-{STACK}-"), events)
    assert sorted((d["alarmName"], d["state"]["value"]) for d in passed) == [
        (f"{ENDPOINT}-5xx-rate", "ALARM"),
        (f"{ENDPOINT}-drift", "ALARM"),
    ]


def test_the_retraining_pattern_ignores_rollback_alarms(aws: None, pool: dict[str, Any]) -> None:
    events = [alarm_event("1", f"{ENDPOINT}-drift"), alarm_event("2", f"{ENDPOINT}-latency-p99")]
    passed = delivered(pool, retraining_event_pattern(STACK, [MODEL]), events)
    assert [d["alarmName"] for d in passed] == [f"{ENDPOINT}-drift"]


def test_alarm_events_parse_cloudwatch_timestamps_and_reject_malformed_ones() -> None:
    parsed = parse_alarm_event(alarm_event("e", at=T0))
    assert parsed is not None and parsed.changed_at == T0 and parsed.state == "ALARM"
    broken = alarm_event("e")
    del broken["detail"]["alarmName"]
    assert parse_alarm_event(broken) is None
    assert parse_alarm_event({"detail-type": "CloudWatch Alarm State Change"}) is None
