"""`pulumi up` for a released stack, with the policy pack: run it when the CLI is installed, else print it."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def up_command(stack: str) -> list[str]:
    return [
        "pulumi",
        "up",
        "--stack",
        stack,
        "--yes",
        "--policy-pack",
        "policies",
        "--policy-pack-config",
        f"policies/config/{stack}.json",
    ]


def shown(command: list[str]) -> str:
    return shlex.join(command)


@dataclass(frozen=True)
class PulumiRunner:
    """Runs in the project root (where Pulumi.yaml and policies/ are); output streams to the terminal."""

    root: Path
    which: Callable[[str], str | None] = field(default=shutil.which)

    def available(self) -> bool:
        return self.which("pulumi") is not None

    def up(self, stack: str) -> int:
        command = up_command(stack)
        command[0] = self.which("pulumi") or "pulumi"
        return subprocess.run(command, cwd=self.root, check=False).returncode
