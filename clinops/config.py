"""Typed, validated stack configuration.

The same loader serves `pulumi up` (values come from the Pulumi runtime) and the offline render (values
come from `Pulumi.<stack>.yaml`). Every check runs before a single resource is declared, and every error
names the key, the value it saw and the fix.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from clinops.identity import ROLE_ARN
from clinops.models import SLO_DEFAULTS, CdsGateway, ModelConfig, Slo, SloOverrides, StrictModel

NAMESPACE = "clinops"
# libyaml's safe loader when the PyYAML wheel has it (the same documents, ~10x faster: stack files and the contracts
# of a 50-model mesh are read on every render and gate); the pure-Python one otherwise.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ENVIRONMENTS = ("dev", "staging", "prod")

# CloudWatch Logs accepts only these retention values (PutRetentionPolicy).
CLOUDWATCH_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

# Retention floors by data classification. HIPAA 45 CFR 164.316(b)(2)(i) keeps required documentation
# (and the audit evidence that shows the safeguards worked) for six years; we hold logs one year hot,
# the common HITRUST/OCR audit look-back. Non-PHI environments only need enough to debug.
RETENTION_FLOORS: dict[str, dict[str, int]] = {
    "phi": {"log": 365, "evidence": 2190},
    "deidentified": {"log": 90, "evidence": 365},
    "synthetic": {"log": 30, "evidence": 30},
}

# SageMaker-managed MLflow's interface endpoint (aws.sagemaker.<region>.experiments, the service AWS's MLflow
# PrivateLink guide names); with private DNS on, the calls the sagemaker-mlflow plugin makes to the URL it derives
# from a tracking-server ARN (https://<region>.experiments.sagemaker.aws) stay in the VPC. Its endpoint policy
# admits only calls on this stack's tracking server (infra.network).
MLFLOW_ENDPOINT_SERVICE = "aws.sagemaker.{region}.experiments"
EXECUTE_API_ENDPOINT_SERVICE = "com.amazonaws.{region}.execute-api"
# AWS APIs the platform calls from inside the VPC (no NAT): each gets an interface endpoint with private DNS.
# The gate requires exactly this list (policies.rules.base), so a component cannot quietly depend on the internet.
INTERFACE_ENDPOINT_SERVICES = (
    "com.amazonaws.{region}.sagemaker.api",
    "com.amazonaws.{region}.sagemaker.runtime",
    "aws.sagemaker.{region}.studio",
    "com.amazonaws.{region}.sts",
    "com.amazonaws.{region}.logs",
    "com.amazonaws.{region}.monitoring",
    "com.amazonaws.{region}.kms",
    "com.amazonaws.{region}.ecr.api",
    "com.amazonaws.{region}.ecr.dkr",
    "com.amazonaws.{region}.events",
    "com.amazonaws.{region}.ssm",
    "com.amazonaws.{region}.sns",
    "com.amazonaws.{region}.lambda",
    EXECUTE_API_ENDPOINT_SERVICE,  # the private CDS Hooks API (infra/cds_api.py): EHR calls enter here
    MLFLOW_ENDPOINT_SERVICE,  # SageMaker-managed MLflow: pipeline runs log there (TrackRun)
    "com.amazonaws.{region}.xray",  # the platform Lambdas' active tracing
)
S3_ENDPOINT_SERVICE = "com.amazonaws.{region}.s3"  # a gateway endpoint (free, no ENI)

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_IMAGE_TAG_RE = re.compile(r"^git-[0-9a-f]{40}$")
_PRINCIPAL_RE = re.compile(r"^arn:aws[a-z-]*:(iam::\d{12}:(role|user)/[\w+=,.@/-]+|iam::\d{12}:root)$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


class ConfigError(Exception):
    """Stack configuration is invalid; `problems` holds one line per bad key."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.stack = stack
        self.problems = problems
        super().__init__(f"stack '{stack}' configuration is invalid:\n" + "\n".join(f"  - {p}" for p in problems))


class Principals(StrictModel):
    """Who may assume each persona role. Segregation of duties starts here: the lists must not overlap."""

    approvers: list[str] = Field(default_factory=list, description="clinical governance (approve packages)")
    authors: list[str] = Field(default_factory=list, description="data scientists (train, register)")
    deployers: list[str] = Field(default_factory=list, description="CI identities (release)")

    @field_validator("approvers", "authors", "deployers")
    @classmethod
    def _arns(cls, values: list[str]) -> list[str]:
        for arn in values:
            if not _PRINCIPAL_RE.match(arn):
                raise ValueError(
                    f"'{arn}' is not an IAM role, user or account-root ARN; "
                    "fix: use e.g. arn:aws:iam::123456789012:role/clinical-governance"
                )
        if len(set(values)) != len(values):
            raise ValueError("lists the same principal twice; fix: remove the duplicate")
        return values

    @model_validator(mode="after")
    def _segregation(self) -> Principals:
        for a, b in (("approvers", "authors"), ("approvers", "deployers")):
            both = sorted(set(getattr(self, a)) & set(getattr(self, b)))
            if both:
                raise ValueError(
                    f"{both[0]} is in both {a} and {b}, which breaks segregation of duties; "
                    f"fix: remove it from one of clinops:principals.{a} / clinops:principals.{b}"
                )
        return self


class Tags(StrictModel):
    owner: str = Field(min_length=3, description="team or mailbox accountable for the stack")
    data_classification: Literal["phi", "deidentified", "synthetic"]
    cost_center: str | None = None


class Accounts(StrictModel):
    """AWS account of each environment. The registry lives in `dev` (the build account)."""

    dev: str | None = None
    staging: str | None = None
    prod: str | None = None

    @field_validator("dev", "staging", "prod")
    @classmethod
    def _account(cls, v: str | None) -> str | None:
        if v is not None and not _ACCOUNT_RE.match(v):
            raise ValueError(f"'{v}' is not a 12-digit AWS account id; fix: quote it in YAML, e.g. \"123456789012\"")
        return v


class StackConfig(StrictModel):
    """Everything a stack may configure under the `clinops:` namespace (camelCase in Pulumi.<stack>.yaml)."""

    stack: str = Field(description="the Pulumi stack name (set by the loader, not by the user)")
    region: str = Field(description="from aws:region")
    environment: Literal["dev", "staging", "prod"]
    account_id: str
    vpc_cidr: str
    availability_zones: int = Field(ge=2, le=3, description="private subnets are spread over this many AZs")
    log_retention_days: int
    evidence_retention_days: int = Field(le=36500)
    principals: Principals = Field(default_factory=Principals)
    tags: Tags
    accounts: Accounts = Field(default_factory=Accounts)
    retain_on_delete: bool = Field(default=False, description="keep stateful resources if the stack is destroyed")
    rollback_slo_seconds: int = Field(default=900, ge=60, le=3600, description="failure-to-rollback budget")
    release_role_arn: str | None = Field(
        default=None, description="role `clinops release/verify` assume in this stack's account (cross-account)"
    )
    image_tag: str = Field(
        description=(
            "immutable ECR tag, git-<40-hex commit>, of the pipeline-steps and inference images CI built and pushed "
            "for this revision (.github/workflows/clinops.yml job `images` sets it before the gate)"
        ),
    )
    lambda_reserved_concurrency: bool = Field(
        default=False,
        description=(
            "reserve concurrency for the platform's Lambdas (2 per guardrail, 1 per canary). Off by default: "
            "new accounts have a concurrency quota of 10 and Lambda refuses any reservation that leaves less "
            "than its unreserved minimum; turn on once the account's quota (Service Quotas L-B99A9384) is raised"
        ),
    )
    slo: SloOverrides = Field(default_factory=SloOverrides, description="stack-wide SLO defaults for every model")
    instance_prices: dict[str, float] = Field(
        default_factory=dict, description="USD per instance-hour, overriding clinops/prices.json for this stack"
    )
    models: list[ModelConfig] = Field(default_factory=list)
    cds: CdsGateway | None = Field(default=None, description="the CDS Hooks API; deployed when set")

    @field_validator("image_tag")
    @classmethod
    def _image_tag(cls, v: str) -> str:
        if not _IMAGE_TAG_RE.match(v):
            raise ValueError(
                f"'{v}' is not an image tag CI builds; fix: git-<full 40-character commit sha> of a commit whose "
                "images the `images` job pushed (tags are immutable, so a tag always names the same bytes)"
            )
        return v

    @field_validator("instance_prices")
    @classmethod
    def _prices(cls, v: dict[str, float]) -> dict[str, float]:
        for instance, price in v.items():
            if not re.match(r"^ml\.[a-z0-9]+\.[a-z0-9]+$", instance) or not 0 < price < 1000:
                raise ValueError(
                    f"'{instance}: {price}' is not an instance price; fix: e.g. ml.m5.large: 0.115 (USD per hour)"
                )
        return v

    @field_validator("release_role_arn")
    @classmethod
    def _release_role(cls, v: str | None) -> str | None:
        if v is not None and not ROLE_ARN.match(v):
            raise ValueError(f"'{v}' is not an IAM role ARN; fix: arn:aws:iam::ACCOUNT:role/NAME")
        return v

    @field_validator("account_id")
    @classmethod
    def _account(cls, v: str) -> str:
        if not _ACCOUNT_RE.match(v):
            raise ValueError(f"'{v}' is not a 12-digit AWS account id; fix: quote it in YAML, e.g. \"123456789012\"")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not _REGION_RE.match(v):
            raise ValueError(f"'{v}' is not an AWS region; fix: set aws:region, e.g. us-east-1")
        return v

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            net = ipaddress.IPv4Network(v, strict=True)
        except ValueError as exc:
            raise ValueError(f"'{v}' is not an IPv4 network ({exc}); fix: e.g. 10.20.0.0/16") from None
        if not net.is_private:
            raise ValueError(f"'{v}' is not a private (RFC 1918) range; fix: use 10.x, 172.16-31.x or 192.168.x")
        if not 16 <= net.prefixlen <= 22:
            raise ValueError(f"'{v}' has prefix /{net.prefixlen}; fix: use /16 to /22 so each AZ gets a subnet")
        return v

    @field_validator("log_retention_days")
    @classmethod
    def _cw_retention(cls, v: int) -> int:
        if v not in CLOUDWATCH_RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in CLOUDWATCH_RETENTION_DAYS)
            raise ValueError(f"{v} is not a CloudWatch Logs retention value; fix: one of {allowed}")
        return v

    @model_validator(mode="after")
    def _environment_rules(self) -> StackConfig:
        floor = RETENTION_FLOORS[self.tags.data_classification]
        if self.log_retention_days < floor["log"]:
            raise _keyed(
                "logRetentionDays",
                self.log_retention_days,
                f"below the {floor['log']}-day floor for {self.tags.data_classification} data; "
                f"fix: set clinops:logRetentionDays to {floor['log']} or more",
            )
        if self.evidence_retention_days < floor["evidence"]:
            raise _keyed(
                "evidenceRetentionDays",
                self.evidence_retention_days,
                f"below the {floor['evidence']}-day floor for {self.tags.data_classification} data "
                "(HIPAA 164.316(b)(2)(i): six years); "
                f"fix: set clinops:evidenceRetentionDays to {floor['evidence']} or more",
            )
        if self.environment in ("staging", "prod") and not self.principals.approvers:
            raise _keyed(
                "principals.approvers",
                [],
                f"{self.environment} needs at least one approver; "
                "fix: add the clinical-governance role ARN to clinops:principals.approvers",
            )
        if self.environment == "prod":
            if self.availability_zones < 3:
                raise _keyed(
                    "availabilityZones",
                    self.availability_zones,
                    "prod must span 3 AZs; fix: set clinops:availabilityZones to 3",
                )
            if not self.retain_on_delete:
                raise _keyed(
                    "retainOnDelete",
                    False,
                    "prod stateful resources must survive a destroy; fix: set clinops:retainOnDelete to true",
                )
            if self.tags.data_classification != "phi":
                raise _keyed(
                    "tags.dataClassification",
                    self.tags.data_classification,
                    "prod serves patients and holds PHI; fix: set it to phi",
                )
        for model in self.models:
            if self.environment == "prod" and model.serving.release.strategy == "ALL_AT_ONCE":
                raise _keyed(
                    f"models[{model.name}].serving.release.strategy",
                    "ALL_AT_ONCE",
                    "prod shifts traffic gradually so alarms can roll a bad model back; fix: use CANARY or LINEAR",
                )
            detect = model.serving.release.detection_seconds
            if detect > self.rollback_slo_seconds:
                raise _keyed(
                    f"models[{model.name}].serving.release",
                    f"detection {detect} s",
                    f"exceeds clinops:rollbackSloSeconds {self.rollback_slo_seconds}; "
                    "fix: shorter alarm periods / fewer evaluation periods, or a longer SLO",
                )
        for model in self.models:
            try:
                self.slo_for(model)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise _keyed(
                    f"models[{model.name}].slo.{to_camel(str(first['loc'][0]))}",
                    first.get("input"),
                    f"{first['msg']}; fix: set it in clinops:slo or the model's slo",
                ) from None
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _keyed("models", dupes[0], "model names must be unique in a stack; fix: rename or remove one")
        for model in self.models:
            if model.package_arn and f":{self.registry_account}:" not in model.package_arn:
                raise _keyed(
                    f"models[{model.name}].packageArn",
                    model.package_arn,
                    f"the package is not in the registry account {self.registry_account}; "
                    "fix: pin a package from the build account's registry",
                )
        return self

    def slo_for(self, model: ModelConfig) -> Slo:
        """Environment default, then the stack's `clinops:slo`, then the model's own `slo`."""
        return Slo.model_validate({**SLO_DEFAULTS[self.environment], **self.slo.given(), **model.slo.given()})

    @property
    def tracking_server_size(self) -> str:
        """SageMaker-managed MLflow size (infra.tracking deploys it, `clinops cost` prices it)."""
        return "Medium" if self.environment == "prod" else "Small"

    @property
    def retraining_stacks(self) -> list[str]:
        """Stacks whose drift/quality alarms open retraining requests in the registry account (this one and
        every environment with an account)."""
        return sorted({self.stack, *[s for s in ENVIRONMENTS if getattr(self.accounts, s)]})

    @property
    def registry_account(self) -> str:
        """The account holding the model registry: the build (dev) account if configured, else this one."""
        return self.accounts.dev or self.account_id

    @property
    def reader_accounts(self) -> list[str]:
        """Other environments' accounts that must read this registry (cross-account promotion)."""
        if self.registry_account != self.account_id:
            return []
        others = {a for a in (self.accounts.staging, self.accounts.prod) if a and a != self.account_id}
        return sorted(others)

    def resource_tags(self) -> dict[str, str]:
        tags = {
            "clinops:stack": self.stack,
            "clinops:environment": self.environment,
            "clinops:owner": self.tags.owner,
            "clinops:data-classification": self.tags.data_classification,
        }
        if self.tags.cost_center:
            tags["clinops:cost-center"] = self.tags.cost_center
        return tags


class _KeyedError(ValueError):
    def __init__(self, key: str, value: Any, message: str) -> None:
        self.key, self.value, self.message = key, value, message
        super().__init__(message)


def _keyed(key: str, value: Any, message: str) -> _KeyedError:
    return _KeyedError(key, value, message)


def _key_path(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            label = str(item)
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                label = str(node[item].get("name", item))
            parts[-1] = f"{parts[-1]}[{label}]" if parts else f"[{label}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(to_camel(str(item)) if "_" in str(item) else str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def _value_at(loc: tuple[Any, ...], data: Any) -> Any:
    node = data
    for item in loc:
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def validate(stack: str, values: dict[str, Any]) -> StackConfig:
    """Validate raw `clinops:*` values (already without the namespace prefix) for one stack."""
    data = {"stack": stack, **values}
    try:
        return StackConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            ctx_err = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_err, _KeyedError):
                problems.append(f"{NAMESPACE}:{ctx_err.key} = {ctx_err.value!r}: {ctx_err.message}")
                continue
            loc = tuple(err["loc"])
            key = f"{NAMESPACE}:{_key_path(loc, data)}" if loc else f"{NAMESPACE}"
            if key == f"{NAMESPACE}:region":
                key = "aws:region"
            value = _value_at(loc, data)
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key; fix: remove it or correct the spelling (see the config reference in README)"
            elif err["type"] == "missing":
                message = "required; fix: `pulumi config set " + key + " <value>`"
                value = None
            problems.append(f"{key} = {value!r}: {message}" if value is not None else f"{key}: {message}")
        raise ConfigError(stack, problems) from None


def parse_pulumi_values(raw: dict[str, Any], stack: str) -> dict[str, Any]:
    """Turn Pulumi's flat `ns:key -> string` map into the model's input dict (structured values are JSON)."""
    values: dict[str, Any] = {}
    for full_key, value in raw.items():
        ns, _, key = full_key.partition(":")
        if full_key == "aws:region":
            values["region"] = value
        if ns != NAMESPACE:
            continue
        if isinstance(value, str) and value[:1] in "[{":
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(stack, [f"{full_key}: not valid JSON; fix: re-set it with --path"]) from None
        values[key] = value
    return values


def stack_file(stack: str, root: Path | None = None) -> Path:
    return (root or project_root()) / f"Pulumi.{stack}.yaml"


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def read_stack_file(stack: str, root: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """Read `Pulumi.<stack>.yaml` into the flat string map the Pulumi engine would hand the program.

    Returns (config, secret_keys). Encrypted values cannot be decrypted offline; they stay "[secret]".
    """
    path = stack_file(stack, root)
    if not path.is_file():
        known = sorted(p.name.split(".")[1] for p in path.parent.glob("Pulumi.*.yaml"))
        raise ConfigError(stack, [f"no stack file {path.name}; fix: use one of {', '.join(known) or '(none)'}"])
    try:
        doc = yaml.load(path.read_text(), Loader=YAML_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(stack, [f"{path.name} is not valid YAML: {exc}"]) from None
    config: dict[str, str] = {}
    secrets: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key], secrets = "[secret]", [*secrets, key]
        elif isinstance(value, bool):
            config[key] = "true" if value else "false"
        elif isinstance(value, dict | list):
            config[key] = json.dumps(value, sort_keys=True)
        else:
            config[key] = str(value)
    return config, secrets


def load_from_stack_file(stack: str, root: Path | None = None) -> StackConfig:
    config, _ = read_stack_file(stack, root)
    return validate(stack, parse_pulumi_values(config, stack))


def load_from_pulumi_runtime() -> StackConfig:
    """Read the config the Pulumi engine passed to this program (real `pulumi up` or the mock render)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = dict(runtime_config.get_config_env())
    raw.update(runtime_config.CONFIG.get())
    stack = pulumi.get_stack()
    return validate(stack, parse_pulumi_values(raw, stack))
