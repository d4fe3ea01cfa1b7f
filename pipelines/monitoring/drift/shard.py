"""Split drift work over the instances of a SageMaker Processing job and merge the partial counts.

With `S3DataDistributionType="ShardedByS3Key"` on the capture input, SageMaker gives each instance a disjoint
subset of the capture objects. Each instance summarises its files (`partial`: histogram counts on the
baseline's bins, never rows) and writes `partial-<host>.json`; one final step (`merge_partials`) adds the
counts and runs the comparison. Because every statistic is computed from counts, the merged result is
identical to a single-instance run over all files.

Outside SageMaker, `assign` reproduces the split deterministically (sorted keys, round robin) so a laptop or
a test can emulate N instances.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pipelines.errors import InputError
from pipelines.monitoring.drift.baseline import Baseline
from pipelines.monitoring.drift.capture import CaptureBatch
from pipelines.monitoring.drift.summary import Summary, merge, summarize

RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")
DEFAULT_VARIANT = "AllTraffic"


def processing_host(config: Path = RESOURCE_CONFIG) -> tuple[str, int, int]:
    """(host name, index, instance count) of this Processing instance; ("local", 0, 1) outside SageMaker."""
    if not config.is_file():
        return "local", 0, 1
    doc = json.loads(config.read_text())
    hosts = sorted(doc.get("hosts", [doc.get("current_host", "local")]))
    current = doc.get("current_host", hosts[0])
    return current, hosts.index(current), len(hosts)


def assign(keys: list[str], index: int, count: int) -> list[str]:
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")
    return sorted(keys)[index::count]


def summarize_batch(
    batch: CaptureBatch, baseline: Baseline, default_variant: str = DEFAULT_VARIANT
) -> dict[str, Summary]:
    """One summary per endpoint variant (production and shadow variants must not be mixed)."""
    frame = batch.frame
    if "variant" not in frame.columns or frame["variant"].isna().all():
        return {default_variant: summarize(frame, baseline)}
    variants = frame["variant"].fillna(default_variant)
    return {str(v): summarize(part, baseline) for v, part in frame.groupby(variants, sort=True)}


def write_partial(summaries: dict[str, Summary], malformed: Counter[str], folder: Path, host: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"host": host, "malformed": dict(malformed), "variants": {v: s.to_dict() for v, s in summaries.items()}}
    path = folder / f"partial-{host}.json"
    path.write_text(json.dumps(doc))
    return path


def merge_partials(folder: Path) -> tuple[dict[str, Summary], Counter[str]]:
    files = sorted(folder.glob("partial-*.json"))
    if not files:
        raise InputError(f"no partial-*.json under {folder}; did the summarise step run on every instance?")
    by_variant: dict[str, list[Summary]] = {}
    malformed: Counter[str] = Counter()
    for file in files:
        doc: dict[str, Any] = json.loads(file.read_text())
        malformed.update(doc.get("malformed", {}))
        for variant, raw in doc["variants"].items():
            by_variant.setdefault(variant, []).append(Summary.from_dict(raw))
    return {v: merge(parts) for v, parts in sorted(by_variant.items())}, malformed
