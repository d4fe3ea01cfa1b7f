"""checkov in a process of its own: `python -m policies.engines.checkov_worker`, started by checkov_engine.

checkov is CPU-bound Python (about 1.5 s of CPU to import, then about 0.8 s per stack here). In the gate's
process it held the GIL against every other engine's Python side (cdk-nag's jsii round trips waited on it);
here it has a core of its own, and its import runs while the gate binds the plans and starts the Node engines.
It imports nothing of ours, only checkov and the standard library.

Protocol, one JSON object per line: the request names Terraform-plan views (files the parent wrote) and an
optional check list; the answer holds, per view, every passed and failed record plus what the parent needs to
map them (each check's category, the types graph checks read through connections), how many resources the view
held and how many checkov read, or the error that stopped the scan. Nothing is kept between requests except
checkov's imported code and which types its checks read: each view gets a new Runner.
The process ends when its standard input closes (the gate's process ended).

Two things keep a scan cheap, neither changing a record: checkov reads the view with json.loads rather than its
YAML loader (its own size limit, set to 0 here), and resources of types no check reads are left out of what it
parses (ReadableTypes). tests/policies/test_checkov_worker.py holds both to plain checkov on the full view.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

# A Terraform resource type as a check's code spells it (`aws_s3_bucket_policy`).
_TF_TYPE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+")


def _import_checkov() -> tuple[Any, Any, Any]:
    os.environ.setdefault("CKV_SKIP_PACKAGE_UPDATE_CHECK", "True")  # else checkov calls the index on import
    # Threads, not forked workers: no fork of a process whose parent runs jsii and Pulumi gRPC threads, and
    # only two cores to share. Read once, when checkov is imported.
    os.environ.setdefault("CHECKOV_PARALLELIZATION_TYPE", "thread")
    # checkov reads a plan's JSON through its YAML loader, for line numbers, unless the file is larger than this
    # limit; above it, json.loads with line numbers 0. We use no line numbers (the worker sends none) and the
    # YAML parse (and what it adds to every block) was half a scan's CPU at 50 models: every view takes the JSON
    # path. Read when checkov is imported.
    os.environ.setdefault("CHECKOV_MAX_IAC_FILE_SIZE", "0")
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


def _graph_check_types(check: Any, under_connection: bool = False) -> set[str]:
    """Every Terraform type a graph check (a condition tree) can judge or read, as checkov's solvers use them.

    A `filter` on `resource_type` directly under a connection condition only narrows which vertices the results
    keep (checkov's ComplexConnectionSolver.filter_results), so it stands for its listed types, not for the
    every-type default the parser gives a condition naming none. Anywhere else a condition's types are what its
    solver walks; a plain and/or walks its own (the union of its children's, that default included)."""
    if (
        check.type == "FILTER"
        and check.attribute == "resource_type"
        and check.operator == "within"
        and under_connection
    ):
        value = check.attribute_value
        return {value} if isinstance(value, str) else set(value or ())
    own = set(check.resource_types or ()) | set(check.connected_resources_types or ())
    if not check.sub_checks:
        return own
    connection = check.type == "COMPLEX_CONNECTION"
    children = set().union(*(_graph_check_types(sub, connection) for sub in check.sub_checks))
    return children if connection else children | own


def _functions(cls: type) -> Iterator[types.FunctionType]:
    for member in vars(cls).values():
        fn = getattr(member, "__func__", None) or getattr(member, "fget", None) or member  # static/class/property
        if isinstance(fn, types.FunctionType):
            yield fn


def _code_objects(check: Any) -> Iterator[types.CodeType]:
    """The code of the check's classes, nested code included; checkov.common's generic base classes excluded
    (BaseCheck hands every check its graph, so it names it)."""
    stack = [
        fn.__code__
        for cls in type(check).__mro__
        if not cls.__module__.startswith(("checkov.common.", "builtins", "abc"))
        for fn in _functions(cls)
    ]
    while stack:
        code = stack.pop()
        yield code
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))


class ReadableTypes:
    """Which Terraform types some check can read, from checkov's own registries (so a checkov upgrade that adds
    checks widens it): a resource check registered for the type, a graph check naming it (judged or connected,
    sub-conditions included), or a resource check that reads the graph itself (few do: an S3 ACL looking for its
    bucket's public access block), which keeps every type its code names and every type the resources it judges
    reference. A resource of any other type yields no record, so it is left out of what checkov parses: that
    saves its parse and graph cost, and changes no verdict.

    The coverage the parent reports is unchanged: it counts types some record names, and no record could name
    a type that no check reads."""

    def __init__(self, runner: Any, resource_registry: Any) -> None:
        runner.graph_registry.load_checks()  # what each run does first; idempotent
        self.graph: set[str] = set()
        for check in runner.graph_registry.checks:
            self.graph |= _graph_check_types(check)
        self.registry = resource_registry
        self.graph_readers: dict[str, set[str]] = {}  # resource type -> the types its graph-reading checks name
        registered = [*resource_registry.checks.values(), *resource_registry.wildcard_checks.values()]
        for check in {ck for cks in registered for ck in cks}:
            codes = list(_code_objects(check))
            if any("graph" in code.co_names for code in codes):
                named = {c for code in codes for c in code.co_consts if isinstance(c, str) and _TF_TYPE.fullmatch(c)}
                for kind in check.supported_entities:
                    self.graph_readers.setdefault(kind, set()).update(named)
        # Keep every type when a check reads all of them (checkov's CKV_SUPPORT_ALL_RESOURCE_TYPE), or when a
        # graph-reading check is registered under a pattern (which types it judges is not a plain lookup).
        self.everything = any(t.lower() == "all" for t in self.graph) or any(
            kind in resource_registry.wildcard_checks for kind in self.graph_readers
        )

    def of(self, kinds: Iterable[str]) -> set[str] | None:
        """The given types some check reads; None when every type must stay."""
        if self.everything:
            return None
        return {k for k in kinds if k in self.graph or self.registry.get_checks(k)}

    def narrow(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        """The view without the resources no check reads; None when nothing is left out."""
        planned = doc.get("planned_values", {}).get("root_module", {})
        configured = doc.get("configuration", {}).get("root_module", {})
        kinds = {r["type"] for r in planned.get("resources", [])}
        keep = self.of(kinds)
        if keep is None:
            return None
        for reader in keep & self.graph_readers.keys():
            # What a graph-reading check may look up: the types it names, and whatever its resources reference.
            keep |= kinds & self.graph_readers[reader]
            for entry in configured.get("resources", []):
                if entry["type"] == reader:
                    refs = (ref for e in entry.get("expressions", {}).values() for ref in e.get("references", ()))
                    keep |= kinds & {ref.split(".", 1)[0] for ref in refs}
        if keep >= kinds:
            return None
        narrowed = dict(doc)
        for section, module in (("planned_values", planned), ("configuration", configured)):
            resources = [r for r in module.get("resources", []) if r["type"] in keep]
            narrowed[section] = {**doc.get(section, {}), "root_module": {**module, "resources": resources}}
        return narrowed


def scan_views(
    views: list[str], checks: list[str] | None, libs: tuple[Any, Any, Any], readable: ReadableTypes | None = None
) -> list[dict[str, Any]]:
    runner_cls, filter_cls, resource_registry = libs
    readable = readable or ReadableTypes(runner_cls(), resource_registry)
    answers = []
    for view in views:
        started = time.perf_counter()
        runner = runner_cls()
        with tempfile.TemporaryDirectory(prefix="clinops-checkov-read-") as tmp, _collector_paused():
            doc = json.loads(Path(view).read_text())
            narrowed = readable.narrow(doc)
            scanned = view
            if narrowed is not None:
                scanned = str(Path(tmp) / Path(view).name)
                Path(scanned).write_text(json.dumps(narrowed))
            report = runner.run(
                root_folder=None,
                files=[scanned],
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
                "resources": _count(doc),
                "scanned": _count(narrowed or doc),
                "seconds": time.perf_counter() - started,
            }
        )
    return answers


def _count(doc: dict[str, Any]) -> int:
    return len(doc.get("planned_values", {}).get("root_module", {}).get("resources", []))


def serve(requests: IO[str], answers: IO[str]) -> None:
    libs = _import_checkov()
    readable: ReadableTypes | None = None
    for line in requests:
        try:
            request = json.loads(line)
            readable = readable or ReadableTypes(libs[0](), libs[2])
            answer: dict[str, Any] = {"views": scan_views(request["views"], request.get("checks"), libs, readable)}
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
