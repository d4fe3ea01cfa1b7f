"""The price table (`clinops/prices.json`: the instance types the stacks use, with its source and date) and what
is computed from it: cost per 1,000 predictions and a stack's fixed monthly cost. No network at run time; a
stack may override instance prices with `clinops:instancePrices`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from clinops.config import INTERFACE_ENDPOINT_SERVICES, StackConfig

PRICES_FILE = Path(__file__).resolve().parent / "prices.json"


class PriceError(ValueError):
    """An instance type or item the table does not price; the message names the fix."""


@dataclass(frozen=True)
class PriceTable:
    source: str
    recorded: str
    region: str
    instance_hour: dict[str, float]
    raw: dict[str, Any] = field(repr=False)

    def instance(self, instance_type: str) -> float:
        try:
            return self.instance_hour[instance_type]
        except KeyError:
            known = ", ".join(sorted(self.instance_hour))
            raise PriceError(
                f"no price for instance type {instance_type} (priced: {known}); fix: add it to "
                f"clinops:instancePrices in the stack file or to {PRICES_FILE.name}"
            ) from None

    def item(self, *path: str) -> float:
        node: Any = self.raw
        for key in path:
            node = node[key]
        return float(node)

    def with_overrides(self, overrides: dict[str, float]) -> PriceTable:
        return PriceTable(self.source, self.recorded, self.region, {**self.instance_hour, **overrides}, self.raw)


@cache
def _shipped() -> PriceTable:
    raw = json.loads(PRICES_FILE.read_text())
    return PriceTable(raw["source"], raw["recorded"], raw["region"], dict(raw["instance_hour"]), raw)


def price_table(overrides: dict[str, float] | None = None) -> PriceTable:
    table = _shipped()
    return table.with_overrides(overrides) if overrides else table


def cost_per_1000(instance_hours: float, hourly_price: float, invocations: float) -> float | None:
    """instance-hours x hourly price / invocations x 1,000; None without traffic (no cost per prediction)."""
    if invocations <= 0:
        return None
    return instance_hours * hourly_price / invocations * 1000


def cost_expression(hourly_price: float, host_minutes_id: str, invocations_id: str) -> str:
    """CloudWatch metric math for cost per 1,000 predictions over one period. Instance-hours come from
    `host_minutes_id`: the SampleCount of the variant's per-instance CPUUtilization, one sample per instance per
    minute, so samples / 60 = instance-hours. Empty periods (no invocations) give no datapoint."""
    return f"IF({invocations_id} > 0, ({host_minutes_id} / 60) * {hourly_price} / {invocations_id} * 1000)"


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: str
    monthly_usd: float


def fixed_monthly_cost(config: StackConfig, log_gb_per_month: float = 5.0) -> list[CostLine]:
    """What the stack costs per month before a single prediction: what runs around the clock. Training,
    processing jobs and Studio apps are billed per use and are not included."""
    table = price_table(config.instance_prices)
    hours = table.item("hours_per_month")
    services = len(INTERFACE_ENDPOINT_SERVICES)
    lines = [
        CostLine(
            "VPC interface endpoints",
            f"{services} services x {config.availability_zones} AZs",
            services * config.availability_zones * table.item("interface_endpoint_az_hour") * hours,
        )
    ]
    for model in config.models:
        if not model.package_arn:
            lines.append(CostLine(f"endpoint {model.name}", "not deployed (no package pinned)", 0.0))
            continue
        serving = model.serving
        instances = serving.min_instances + (1 if serving.shadow_package_arn else 0)
        lines.append(
            CostLine(
                f"endpoint {model.name}",
                f"{instances} x {serving.instance_type} (minimum fleet"
                + (", incl. 1 shadow)" if serving.shadow_package_arn else ")"),
                instances * table.instance(serving.instance_type) * hours,
            )
        )
    lines.append(CostLine("SageMaker Studio domain", "domain and profiles (apps and EFS homes billed per use)", 0.0))
    size = config.tracking_server_size
    lines.append(CostLine("MLflow tracking server", size, table.item("mlflow_server_hour", size) * hours))
    stored = log_gb_per_month * config.log_retention_days / 30  # steady state: a retention period's worth
    lines.append(
        CostLine(
            "CloudWatch Logs",
            f"{log_gb_per_month:g} GB/month ingested, ~{stored:.0f} GB stored",
            log_gb_per_month * table.item("logs_ingest_gb") + stored * table.item("logs_storage_gb_month"),
        )
    )
    return lines
