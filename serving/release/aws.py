"""AWS access per stack: the stack's account through its release role, bounded retries, one region.

Two retry layers, both bounded. botocore's `standard` mode retries connection errors and throttling inside a
single call (`BOTOCORE_ATTEMPTS`); `StackAws.call` adds a few slower attempts with full-jitter exponential
backoff for throttling and transient service errors that outlast botocore's quick retries (a SageMaker
control-plane brown-out). Worst case per call: BOTOCORE_ATTEMPTS x RetryPolicy.attempts requests and about
`RetryPolicy.budget_seconds` of sleep; then `AwsUnavailable` (exit 9) names the operation.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from clinops.config import StackConfig
from clinops.exitcodes import AwsUnavailable, UnusableInput

BOTOCORE_ATTEMPTS = 3
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
_SESSION_CHARS = re.compile(r"[^\w+=,.@-]")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_seconds: float = 1.0
    cap_seconds: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def delay(self, attempt: int) -> float:
        """Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): racing clients spread out."""
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * 2**attempt))

    @property
    def budget_seconds(self) -> float:
        return sum(min(self.cap_seconds, self.base_seconds * 2**a) for a in range(self.attempts - 1))


def botocore_config(region: str) -> Config:
    return Config(region_name=region, retries={"mode": "standard", "max_attempts": BOTOCORE_ATTEMPTS})


class StackAws:
    """Clients in one stack's account and region. `clients` replaces individual services (tests: Stubber)."""

    def __init__(
        self,
        session: Any,
        region: str,
        *,
        retry: RetryPolicy | None = None,
        clients: dict[str, Any] | None = None,
        account: str | None = None,
    ) -> None:
        self.session = session
        self.region = region
        self.retry = retry or RetryPolicy()
        self.account = account
        self._clients: dict[str, Any] = dict(clients or {})

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=botocore_config(self.region))
        return self._clients[service]

    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """Call with bounded retries on throttling and transient faults; other ClientErrors propagate as-is
        (callers interpret NotFound/Validation); exhausted retries raise AwsUnavailable."""
        method = getattr(self.client(service), operation)
        last = ""
        for attempt in range(self.retry.attempts):
            try:
                return method(**params)
            except ClientError as exc:
                if error_code(exc) not in RETRYABLE_CODES:
                    raise
                last = f"{error_code(exc)}: {error_message(exc)}"
            except (ConnectionError, ReadTimeoutError) as exc:
                last = type(exc).__name__
            if attempt + 1 < self.retry.attempts:
                self.retry.sleep(self.retry.delay(attempt))
        raise AwsUnavailable(
            f"{service}.{operation} still failing after {self.retry.attempts} attempts with backoff ({last}); "
            "nothing was changed - retry later",
            {"operation": f"{service}.{operation}", "attempts": self.retry.attempts, "last_error": last},
        )


def caller_arn(session: Any, region: str) -> str:
    """Who is running this: the STS caller identity of the credentials clinops was started with."""
    try:
        return str(session.client("sts", config=botocore_config(region)).get_caller_identity()["Arn"])
    except (ClientError, BotoCoreError) as exc:
        raise AwsUnavailable(
            f"cannot tell who you are (sts:GetCallerIdentity failed: {exc}); fix: check credentials"
        ) from None


def session_label(actor: str) -> str:
    """An STS RoleSessionName / SourceIdentity (2-64 of [\\w+=,.@-]) naming the actor: its last path part."""
    tail = actor.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    label = _SESSION_CHARS.sub("-", tail)[:64]
    return label if len(label) >= 2 else f"clinops-{label}"


def open_stack(
    config: StackConfig,
    actor: str,
    base_session: Any,
    *,
    retry: RetryPolicy | None = None,
    clients: dict[str, Any] | None = None,
) -> StackAws:
    """Clients in the stack's account: assume `releaseRoleArn` when set, else use the caller's credentials,
    which must then belong to the stack's account (never release or verify against the wrong account)."""
    region = config.region
    if config.release_role_arn:
        sts = base_session.client("sts", config=botocore_config(region))
        label = session_label(actor)
        try:
            # SourceIdentity survives role chaining and lands in CloudTrail: the person behind the release role.
            answer = sts.assume_role(
                RoleArn=config.release_role_arn,
                RoleSessionName=label,
                SourceIdentity=label,
                DurationSeconds=3600,
            )
        except ClientError as exc:
            raise AwsUnavailable(
                f"cannot assume {config.release_role_arn} for stack {config.stack} ({error_code(exc)}: "
                f"{error_message(exc)}); fix: the role must trust your identity and allow sts:SetSourceIdentity"
            ) from None
        assumed_account = answer["AssumedRoleUser"]["Arn"].split(":")[4]
        if assumed_account != config.account_id:
            raise UnusableInput(
                f"releaseRoleArn {config.release_role_arn} is in account {assumed_account}, but stack "
                f"{config.stack} is account {config.account_id}; fix: clinops:releaseRoleArn"
            )
        creds = answer["Credentials"]
        import boto3

        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region,
        )
        return StackAws(session, region, retry=retry, clients=clients, account=config.account_id)
    account = caller_arn(base_session, region).split(":")[4]
    if account != config.account_id:
        raise UnusableInput(
            f"your credentials are for account {account}, but stack {config.stack} is account "
            f"{config.account_id} and sets no clinops:releaseRoleArn; fix: use the stack account's credentials "
            "or configure a release role"
        )
    return StackAws(base_session, region, retry=retry, clients=clients, account=config.account_id)
