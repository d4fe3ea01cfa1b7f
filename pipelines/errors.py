"""The two ways a run ends without a registered model, and the exit codes the CLI maps them to.

`InputError`: the inputs cannot produce a verdict (missing file, unparsable contract, one-class label,
a subgroup too small to judge) - exit 2. `PipelineStopped`: a step judged the data or the candidate and
said no (contract violated, gates failed) - exit 1.
"""

from __future__ import annotations

from clinops.exitcodes import ExitCode


class InputError(Exception):
    """The input cannot be used; the message says which input and how to fix it."""

    exit_code = ExitCode.UNUSABLE_INPUT


class PipelineStopped(Exception):
    """A step stopped the pipeline; `reasons` are one line each, safe to print (never PHI)."""

    exit_code = ExitCode.FAILED

    def __init__(self, step: str, reasons: list[str]) -> None:
        self.step = step
        self.reasons = reasons
        super().__init__(f"{step} stopped the pipeline:\n" + "\n".join(f"  - {r}" for r in reasons))
