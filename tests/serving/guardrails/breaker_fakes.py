"""In-memory AWS for the breaker's property test: SSM (versioned parameters, history pages, Overwrite=False),
SageMaker (an endpoint that deploys, lands or fails back; UpdateEndpoint refused mid-deployment), CloudWatch
alarms, SNS and the evidence log - plus a fault injector that breaks any one call of an invocation.

Why fakes here and moto elsewhere: the property test runs ~200 examples x ~25 invocations x ~15 calls; moto's
HTTP emulation costs milliseconds a call, these cost microseconds. The fault tests (test_breaker_faults.py) and
the rest of tests/serving run the same code against moto and botocore's Stubber, which validate every request
against the real service models - so the shapes these fakes answer with are held honest there."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from serving.guardrails.state import BreakerState


class LambdaKilled(BaseException):
    """The invocation dies (timeout, out of memory): nothing after it runs, nothing can catch it."""


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


# Faults: where in an invocation, and what. "-after" = the call took effect, then the answer was lost.
FAULT_KINDS = ("throttled", "connection", "timeout-after", "killed", "killed-after")


@dataclass
class Faults:
    """Breaks the `at`-th AWS call (0-based, counted across every service) of the armed invocation."""

    at: int | None = None
    kind: str = ""
    calls: int = 0
    fired: bool = False
    # the test's oracle: told of every call (error None) and of every error it raises
    seen: Callable[[str, BaseException | None], None] | None = None

    def arm(self, plan: tuple[int, str] | None) -> None:
        self.at, self.kind = plan if plan else (None, "")
        self.calls, self.fired = 0, False

    def disarm(self) -> None:
        self.at = None

    def around(self, operation: str, call: Callable[[], Any]) -> Any:
        if self.seen:
            self.seen(operation, None)
        try:
            return self._around(operation, call)
        except BaseException as exc:
            if self.seen:
                self.seen(operation, exc)
            raise

    def _around(self, operation: str, call: Callable[[], Any]) -> Any:
        index = self.calls
        self.calls += 1
        if self.at is None or index != self.at:
            return call()
        self.fired = True
        if self.kind == "throttled":
            raise client_error("ThrottlingException", "Rate exceeded", operation)
        if self.kind == "connection":
            raise EndpointConnectionError(endpoint_url=f"https://{operation}.example")
        if self.kind == "killed":
            raise LambdaKilled(operation)
        call()
        if self.kind == "timeout-after":
            raise ReadTimeoutError(endpoint_url=f"https://{operation}.example")
        raise LambdaKilled(operation)  # killed-after


class Faulty:
    """Every method call of `inner` goes through the fault injector (paginators too)."""

    def __init__(self, inner: Any, faults: Faults) -> None:
        self._inner, self._faults = inner, faults

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name == "get_paginator":
            return lambda op: _FaultyPaginator(target(op), self._faults, op)
        return lambda *a, **k: self._faults.around(name, lambda: target(*a, **k))


class _FaultyPaginator:
    def __init__(self, inner: Any, faults: Faults, operation: str) -> None:
        self._inner, self._faults, self._operation = inner, faults, operation

    def paginate(self, **kwargs: Any) -> Iterator[Any]:
        return self._faults.around(self._operation, lambda: list(self._inner.paginate(**kwargs)))


@dataclass
class Commit:
    at: datetime
    version: int
    state: BreakerState | None  # None: not a valid record (a lost compare-and-set or a hand edit)
    endpoint: tuple[str, str]  # (status, config) when it was written
    alarms: dict[str, str]  # each alarm's CloudWatch state when it was written


class FakeSsm:
    def __init__(self, clock: Callable[[], datetime], world: FakeWorld) -> None:
        self.clock, self.world = clock, world
        self.params: dict[str, list[tuple[int, str]]] = {}
        self.commits: list[Commit] = []

    def get_parameter(self, Name: str) -> dict[str, Any]:
        if Name not in self.params:
            raise client_error("ParameterNotFound", Name, "GetParameter")
        version, value = self.params[Name][-1]
        return {"Parameter": {"Name": Name, "Value": value, "Version": version}}

    def put_parameter(self, Name: str, Value: str, Overwrite: bool = False, **_: Any) -> dict[str, Any]:
        history = self.params.setdefault(Name, [])
        if history and not Overwrite:
            raise client_error("ParameterAlreadyExists", Name, "PutParameter")
        version = (history[-1][0] if history else 0) + 1
        history.append((version, Value))
        del history[:-100]  # SSM keeps the newest 100 versions
        if Name.endswith("/circuit-breaker"):
            state = BreakerState.from_json(Value)
            valid = state if state is not None and state.based_on == version - 1 else None
            alarms = {name: value for name, (value, _) in self.world.cloudwatch.alarms.items()}
            self.commits.append(Commit(self.clock(), version, valid, self.world.endpoint_now(), alarms))
        return {"Version": version, "Tier": "Standard"}

    def get_paginator(self, operation: str) -> Any:
        assert operation == "get_parameter_history"
        return self

    def paginate(self, Name: str, MaxResults: int = 50) -> Iterator[dict[str, Any]]:
        if Name not in self.params:
            raise client_error("ParameterNotFound", Name, "GetParameterHistory")
        history = self.params[Name]
        for start in range(0, len(history), MaxResults):
            page = history[start : start + MaxResults]
            yield {"Parameters": [{"Name": Name, "Version": v, "Value": value} for v, value in page]}

    def valid_state(self, name: str) -> BreakerState | None:
        for version, value in reversed(self.params.get(name, [])):
            state = BreakerState.from_json(value)
            if state is not None and state.based_on == version - 1:
                return state
        return None


@dataclass
class Update:
    at: datetime
    rollback_id: str | None  # the breaker's rollback the call belongs to (read from its state: an oracle)
    config: str


class FakeSageMaker:
    def __init__(self, world: FakeWorld, serving: str, configs: dict[str, datetime]) -> None:
        self.world = world
        self.status, self.config, self.target = "InService", serving, None
        self.configs = configs
        self.accepted: list[Update] = []
        self.instant = False  # accepted deployments finish at once (as moto shows them)

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:
        return {"EndpointName": EndpointName, "EndpointStatus": self.status, "EndpointConfigName": self.config}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:
        if EndpointConfigName not in self.configs:
            raise client_error(
                "ValidationException", f"Could not find endpoint configuration {EndpointConfigName}", "x"
            )
        return {"EndpointConfigName": EndpointConfigName, "CreationTime": self.configs[EndpointConfigName]}

    def update_endpoint(self, EndpointName: str, EndpointConfigName: str, **_: Any) -> dict[str, Any]:
        if self.status != "InService":
            raise client_error("ValidationException", f"Cannot update in-progress endpoint {EndpointName}", "x")
        state = self.world.breaker_state()
        self.accepted.append(Update(self.world.clock(), state.rollback_id if state else None, EndpointConfigName))
        self.status, self.target = "Updating", EndpointConfigName
        if self.instant:
            self.settle(lands=True)
        return {"EndpointArn": f"arn:aws:sagemaker:us-east-1:111111111111:endpoint/{EndpointName}"}

    # the world moving on its own (driver actions)
    def deploy(self, config: str) -> None:
        if self.status == "InService":
            self.status, self.target = "Updating", config

    def settle(self, lands: bool) -> None:
        if self.status == "Updating":
            self.status, self.config = "InService", (self.target if lands else self.config)
            self.target = None

    def redeployed(self, config: str) -> None:
        """A human's deployment finished: InService on `config`."""
        if self.status != "Updating":
            self.status, self.config, self.target = "InService", config, None

    def break_down(self) -> None:
        self.status, self.target = "Failed", None


class FakeCloudWatch:
    def __init__(self) -> None:
        self.alarms: dict[str, tuple[str, datetime]] = {}

    def set(self, name: str, value: str, at: datetime) -> bool:
        """True when this is a state change (CloudWatch sends an event only then)."""
        if name in self.alarms and self.alarms[name][0] == value:
            return False
        self.alarms[name] = (value, at)
        return True

    def describe_alarms(self, AlarmNames: list[str], **_: Any) -> dict[str, Any]:
        found = [
            {"AlarmName": n, "StateValue": v, "StateReason": f"fake {v}", "StateUpdatedTimestamp": t}
            for n in AlarmNames
            if n in self.alarms
            for v, t in [self.alarms[n]]
        ]
        return {"MetricAlarms": found, "CompositeAlarms": []}


class FakeSns:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def publish(self, TopicArn: str, Subject: str, Message: str) -> dict[str, Any]:
        self.messages.append({"subject": Subject, **json.loads(Message)})
        return {"MessageId": str(len(self.messages))}


@dataclass
class Entry:
    seq: int
    details: dict[str, Any]


@dataclass
class FakeEvidence:
    entries: list[Entry] = field(default_factory=list)

    def append(self, kind: str, **fields: Any) -> Entry:
        entry = Entry(len(self.entries), dict(fields.get("details") or {}))
        self.entries.append(entry)
        return entry


class FakeWorld:
    """The fakes wired together; `breaker_state` and `endpoint_now` are the test's oracles."""

    def __init__(self, clock: Callable[[], datetime], state_parameter: str) -> None:
        self.clock, self.state_parameter = clock, state_parameter
        self.update_attempts: dict[str | None, int] = {}  # rollback id -> UpdateEndpoint calls made
        self.update_rejected: set[str | None] = set()  # rollback ids whose call got a ClientError
        self.ssm = FakeSsm(clock, self)
        self.cloudwatch = FakeCloudWatch()
        self.sns = FakeSns()
        self.evidence = FakeEvidence()
        self.sagemaker: FakeSageMaker

    def saw(self, operation: str, error: BaseException | None) -> None:
        if operation != "update_endpoint":
            return
        state = self.breaker_state()
        rollback = state.rollback_id if state else None
        if error is None:
            self.update_attempts[rollback] = self.update_attempts.get(rollback, 0) + 1
        elif isinstance(error, ClientError):
            self.update_rejected.add(rollback)

    def breaker_state(self) -> BreakerState | None:
        return self.ssm.valid_state(self.state_parameter)

    def endpoint_now(self) -> tuple[str, str]:
        return self.sagemaker.status, self.sagemaker.config
