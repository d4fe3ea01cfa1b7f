"""What botocore's ParamValidator (and so Stubber) does not check: enums, min/max lengths and values, patterns.
Walks a request against the real service model and returns every violation."""

from __future__ import annotations

import re
from typing import Any

import botocore.session

_SESSION = botocore.session.get_session()


def violations(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    shape = _SESSION.get_service_model(service).operation_model(operation).input_shape
    return list(_walk(shape, params, operation))


def _walk(shape: Any, value: Any, path: str) -> Any:
    meta = shape.metadata
    if shape.type_name == "structure":
        for name in shape.required_members:
            if name not in value:
                yield f"{path}.{name}: required"
        for name, child in value.items():
            if name not in shape.members:
                yield f"{path}.{name}: not a member of {shape.name}"
                continue
            yield from _walk(shape.members[name], child, f"{path}.{name}")
    elif shape.type_name == "list":
        if "min" in meta and len(value) < meta["min"]:
            yield f"{path}: fewer than {meta['min']} items"
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: more than {meta['max']} items"
        for index, item in enumerate(value):
            yield from _walk(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            yield f"{path}: {value!r} not one of {shape.enum}"
        if "min" in meta and len(value) < meta["min"]:
            yield f"{path}: shorter than {meta['min']}"
        if "max" in meta and len(value) > meta["max"]:
            yield f"{path}: longer than {meta['max']}"
        if "pattern" in meta and _compiles(meta["pattern"]) and not re.fullmatch(meta["pattern"], value):
            yield f"{path}: {value!r} does not match {meta['pattern']}"
    elif shape.type_name in ("integer", "long"):
        if "min" in meta and value < meta["min"]:
            yield f"{path}: {value} below {meta['min']}"
        if "max" in meta and value > meta["max"]:
            yield f"{path}: {value} above {meta['max']}"


def _compiles(pattern: str) -> bool:
    """Some service patterns are Java regexes (\\p{L}); those are skipped rather than misjudged."""
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True
