"""Which inputs of a pulumi-aws resource are booleans, read from the provider SDK's own type annotations.

A real `pulumi preview --json` prints secret values as "[secret]". In a string input (an SSM SecureString)
that is expected; in a boolean input the gate cannot tell on from off, and an engine would either crash or
read the string as true. The SDK's source is the one place that states each input's type, so it is scanned as
text (importing the pulumi_aws submodules would cost seconds); the result is cached per module.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

# `@pulumi.getter(name="camelName")` (or bare `@pulumi.getter` for one-word names) over a bool-typed property.
_BOOL_GETTER = re.compile(
    r'@pulumi\.getter(?:\(name="(\w+)"\))?\s*\n\s*def (\w+)\(self\) -> Optional\[pulumi\.Input\[_builtins\.bool\]\]'
)


@functools.cache
def _sdk_root() -> Path | None:
    spec = importlib.util.find_spec("pulumi_aws")  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@functools.cache
def _bool_names(path: Path) -> frozenset[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    return frozenset(camel or plain for camel, plain in _BOOL_GETTER.findall(text))


def boolean_inputs(resource_type: str) -> tuple[frozenset[str], frozenset[str]]:
    """(top-level boolean inputs, boolean fields of nested input blocks) of a pulumi-aws type token such as
    `aws:kms/key:Key`; empty for other providers and components."""
    root = _sdk_root()
    provider, _, rest = resource_type.partition(":")
    module, _, resource = rest.partition("/")
    resource = resource.partition(":")[0]
    if provider != "aws" or root is None or not module or not resource or not module.isidentifier():
        return frozenset(), frozenset()
    directory = root / module
    return _bool_names(directory / f"{_snake(resource)}.py"), _bool_names(directory / "_inputs.py")
