"""checkov in a process of its own: `python -m policies.engines.checkov_worker`, started by checkov_engine.

checkov is CPU-bound Python (about 1.5 s of CPU to import, then about 0.8 s per stack here). In the gate's
process it held the GIL against every other engine's Python side (cdk-nag's jsii round trips waited on it);
here it has a core of its own, and its import runs while the gate binds the plans and starts the Node engines.
It imports nothing of ours, only checkov and the standard library.

Protocol, one JSON object per line: the request names Terraform-plan views (files the parent wrote) and an
optional check list; the answer holds, per view, every passed and failed record plus what the parent needs to
map them (each check's category, the types graph checks read through connections), or the error that stopped
the scan. Nothing is kept between requests except checkov's imported code: each view gets a new Runner.
The process ends when its standard input closes (the gate's process ended).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator
from typing import IO, Any


def _import_checkov() -> tuple[Any, Any, Any]:
    os.environ.setdefault("CKV_SKIP_PACKAGE_UPDATE_CHECK", "True")  # else checkov calls the index on import
    # Threads, not forked workers: no fork of a process whose parent runs jsii and Pulumi gRPC threads, and
    # only two cores to share. Read once, when checkov is imported.
    os.environ.setdefault("CHECKOV_PARALLELIZATION_TYPE", "thread")
    logging.getLogger("checkov").setLevel(logging.ERROR)
    from checkov.runner_filter import RunnerFilter
    from checkov.terraform.checks.resource.registry import resource_registry
    from checkov.terraform.plan_runner import Runner

    return Runner, RunnerFilter, resource_registry


def _categories(runner: Any, resource_registry: Any, check_ids: set[str]) -> dict[str, str]:
    cats = {ck.id: ck.categories[0].name for cks in resource_registry.checks.values() for ck in cks if ck.categories}
    cats.update({ck.id: str(ck.category) for ck in runner.graph_registry.checks if ck.category})
    return {k: v for k, v in cats.items() if k in check_ids}


def _connected_types(runner: Any, check_ids: set[str]) -> dict[str, list[str]]:
    """Per graph check that ran: the Terraform types it reads through a connection (the flow log of a VPC, the
    encryption configuration of a bucket). Its findings land on the VPC or bucket, but those were judged too."""
    connected = {}
    for check in runner.graph_registry.checks:
        if check.id not in check_ids:
            continue
        found: set[str] = set()
        stack = [check]
        while stack:
            ck = stack.pop()
            found.update(ck.connected_resources_types or ())
            stack.extend(ck.sub_checks or ())
        if found:
            connected[check.id] = sorted(found)
    return connected


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """A scan allocates millions of small objects (parsed view, graph, check results) and keeps them until it
    ends, so each cyclic collection rescans a heap that grows with the plan: about a fifth of checkov's CPU at
    50 models. Reference counting frees the rest; the collector resumes, and the scan's cycles are collected,
    before the next request."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
            gc.collect()


def scan_views(views: list[str], checks: list[str] | None, libs: tuple[Any, Any, Any]) -> list[dict[str, Any]]:
    runner_cls, filter_cls, resource_registry = libs
    answers = []
    for view in views:
        started = time.perf_counter()
        runner = runner_cls()
        with _collector_paused():
            report = runner.run(
                root_folder=None,
                files=[view],
                runner_filter=filter_cls(framework=["terraform_plan"], checks=checks),
            )
        records = [
            {
                "status": status,
                "check_id": rec.check_id,
                "check_name": rec.check_name,
                "resource": rec.resource,
                "guideline": rec.guideline,
            }
            for status, recs in (("passed", report.passed_checks), ("failed", report.failed_checks))
            for rec in recs
        ]
        ids = {r["check_id"] for r in records}
        answers.append(
            {
                "records": records,
                "categories": _categories(runner, resource_registry, ids),
                "connected": _connected_types(runner, ids),
                "seconds": time.perf_counter() - started,
            }
        )
    return answers


def serve(requests: IO[str], answers: IO[str]) -> None:
    libs = _import_checkov()
    for line in requests:
        try:
            request = json.loads(line)
            answer: dict[str, Any] = {"views": scan_views(request["views"], request.get("checks"), libs)}
        except Exception as exc:  # the parent re-raises it; the worker stays usable for the next request
            kinds = [k.__name__ for k in type(exc).__mro__]
            answer = {"error": {"type": kinds[0], "kinds": kinds, "message": str(exc), "trace": traceback.format_exc()}}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main() -> None:
    # Answers go to the real stdout; anything checkov prints (fd 1 included) goes to stderr instead.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin, answers)


if __name__ == "__main__":
    main()
