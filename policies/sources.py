"""Where a finding points in the repository: the file and line that declare the resource, for code scanning.

A Pulumi URN names the resource's component chain (`clinops:infra:Network$aws:ec2/subnet:Subnet`) and its
name (`private-1`). The component's type token leads to the file whose class registers it
(`super().__init__("clinops:infra:Network", ...)`); inside that file the resource's constructor call
(`aws.ec2.Subnet(...)`) is found with `ast`, and among several the one whose name argument (a string or
f-string) matches the URN's name wins. The program is read as text, never imported: policies judge plans and
must not depend on the program that makes them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROGRAM_DIR = "infra"
FALLBACK = ("infra/stack.py", 1)


@dataclass(frozen=True)
class _Call:
    file: str
    line: int
    name_pattern: re.Pattern[str] | None  # None: the name is a variable; matches anything, ranked last


@dataclass(frozen=True)
class _Index:
    components: dict[str, tuple[str, int]]  # type token -> (file, line of the class)
    calls: dict[tuple[str, str], list[_Call]]  # (provider module, class name) -> constructor calls


def _attribute_chain(node: ast.expr) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return parts[::-1]


def _name_pattern(node: ast.expr | None) -> re.Pattern[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.compile(re.escape(node.value))
    if isinstance(node, ast.JoinedStr):
        pieces = [
            re.escape(v.value) if isinstance(v, ast.Constant) and isinstance(v.value, str) else ".+"
            for v in node.values
        ]
        return re.compile("".join(pieces))
    return None


def _first_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return call.args[0]
    for keyword in call.keywords:
        if keyword.arg in ("resource_name", "name"):
            return keyword.value
    return None


@lru_cache(maxsize=4)
def _index(root: Path) -> _Index:
    components: dict[str, tuple[str, int]] = {}
    calls: dict[tuple[str, str], list[_Call]] = {}
    for path in sorted((root / PROGRAM_DIR).glob("*.py")):
        relative = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for call in (n for n in ast.walk(cls) if isinstance(n, ast.Call)):
                first = _first_argument(call)
                is_init = isinstance(call.func, ast.Attribute) and call.func.attr == "__init__"
                if is_init and isinstance(first, ast.Constant) and isinstance(first.value, str):
                    components.setdefault(first.value, (relative, cls.lineno))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            chain = _attribute_chain(call.func)
            if len(chain) >= 3 and chain[0] == "aws":  # aws.<module>.<Class>(...)
                key = (chain[1].lower().rstrip("_"), chain[-1])  # aws.lambda_ is the lambda module
                calls.setdefault(key, []).append(_Call(relative, call.lineno, _name_pattern(_first_argument(call))))
    return _Index(components, calls)


def _parse_urn(urn: str) -> tuple[list[str], str]:
    """(type chain, resource name) of `urn:pulumi:STACK::PROJECT::T1$T2::NAME`."""
    parts = urn.split("::")
    if len(parts) < 4:
        return [], ""
    return parts[2].split("$"), parts[-1]


def declaration(urn: str, root: Path) -> tuple[str, int]:
    """(file relative to `root`, 1-based line) declaring the resource `urn`, or the stack's entry point."""
    chain, name = _parse_urn(urn)
    if not chain:
        return FALLBACK
    index = _index(root)
    own_type = chain[-1]
    if own_type.startswith("clinops:"):
        return index.components.get(own_type, FALLBACK)
    component = next((t for t in reversed(chain[:-1]) if t.startswith("clinops:")), None)
    home = index.components.get(component) if component else None
    token = own_type.split(":")
    if len(token) != 3:
        return home or FALLBACK
    module, cls = token[1].split("/")[0].lower(), token[2]
    candidates = index.calls.get((module, cls), [])
    in_home = [c for c in candidates if home is None or c.file == home[0]]
    if not in_home and home is not None:  # made through a helper: the home's line that names it
        return _line_naming(root / home[0], name) or home
    in_home = in_home or candidates
    named = [c for c in in_home if c.name_pattern is not None and c.name_pattern.fullmatch(name)]
    # An exact string beats an f-string; an f-string with more literal text beats a looser one.
    named.sort(key=lambda c: -len(c.name_pattern.pattern) if c.name_pattern else 0)
    unnamed = [c for c in in_home if c.name_pattern is None]
    ranked = named or unnamed or in_home
    if ranked:
        return ranked[0].file, ranked[0].line
    return home or FALLBACK


def _line_naming(path: Path, name: str) -> tuple[str, int] | None:
    """The first line of `path` with a string literal that is `name` or its longest dash-separated part."""
    lines = path.read_text(encoding="utf-8").splitlines()
    words = name.split("-")
    pieces = sorted(
        {"-".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}, key=len, reverse=True
    )
    for piece in pieces:
        if len(piece) < 4:
            break
        quoted = re.compile(rf"[\"'{{}}]{re.escape(piece)}[\"'{{}}-]")
        for number, line in enumerate(lines, start=1):
            if quoted.search(line):
                return str(path.relative_to(path.parents[1]).as_posix()), number
    return None
