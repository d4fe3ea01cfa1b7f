"""Edit `Pulumi.<stack>.yaml` the way a careful human would: comments and layout kept, validated first,
replaced atomically, restorable byte for byte.

The edited text is validated (and gated) as a staged copy in a temporary project root before the real file
is touched, so an invalid pin never reaches disk; `replace` and `restore` go through a temporary file and
`os.replace`, so a reader (or a crash) sees the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from clinops.config import ConfigError, StackConfig, load_from_stack_file, stack_file
from clinops.exitcodes import UnusableInput

MODELS_KEY = "clinops:models"


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)  # the layout of the repository's stack files
    yaml.width = 4096  # never re-wrap a long description
    return yaml


class StackFileEdit:
    """A pending edit of one stack file. Nothing is written until `replace`."""

    def __init__(self, stack: str, root: Path) -> None:
        self.stack = stack
        self.path = stack_file(stack, root)
        try:
            self.original = self.path.read_text()
            self._doc = _yaml().load(self.original)
        except (OSError, YAMLError) as exc:
            raise UnusableInput(f"cannot read {self.path}: {exc}") from None
        self.changes: dict[str, dict[str, str | None]] = {}

    def _model(self, name: str) -> CommentedMap:
        models = (self._doc.get("config") or {}).get(MODELS_KEY) or []
        for entry in models:
            if isinstance(entry, CommentedMap) and entry.get("name") == name:
                return entry
        raise UnusableInput(f"stack {self.stack} has no model '{name}' in {self.path.name}")

    def _set(self, mapping: CommentedMap, key: str, value: str | None, label: str, after: str | None = None) -> None:
        old = mapping.get(key)
        if old == value:
            return
        self.changes[label] = {"from": old, "to": value}
        if value is None:
            del mapping[key]
        elif key in mapping:
            mapping[key] = value
        else:
            keys = list(mapping)
            position = keys.index(after) + 1 if after in keys else len(keys)
            mapping.insert(position, key, value)

    def pin(self, model: str, package_arn: str, last_known_good: str | None) -> None:
        entry = self._model(model)
        self._set(entry, "packageArn", package_arn, "packageArn", after="description")
        self._set(entry, "lastKnownGoodPackageArn", last_known_good, "lastKnownGoodPackageArn", after="packageArn")

    def shadow(self, model: str, package_arn: str | None) -> None:
        entry = self._model(model)
        serving = entry.get("serving")
        if serving is None:
            if package_arn is None:
                return
            serving = CommentedMap()
            entry["serving"] = serving
        self._set(serving, "shadowPackageArn", package_arn, "serving.shadowPackageArn")

    def text(self) -> str:
        out = io.StringIO()
        _yaml().dump(self._doc, out)
        return out.getvalue()

    @contextmanager
    def staged(self) -> Iterator[tuple[Path, StackConfig]]:
        """A temporary project root holding only the edited stack file, and its validated config."""
        with tempfile.TemporaryDirectory(prefix="clinops-release-") as tmp:
            root = Path(tmp)
            stack_file(self.stack, root).write_text(self.text())
            try:
                config = load_from_stack_file(self.stack, root)
            except ConfigError as exc:
                raise UnusableInput(f"the edited {self.path.name} would be invalid: {exc}") from None
            yield root, config

    def replace(self) -> None:
        write_atomic(self.path, self.text())

    def restore(self) -> None:
        write_atomic(self.path, self.original)


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
