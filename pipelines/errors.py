"""The two ways a run ends without a registered model, and the exit codes the CLI maps them to.

`InputError`: the inputs cannot produce a verdict (missing file, unparsable contract, one-class label,
a subgroup too small to judge) - exit 2. `PipelineStopped`: a step judged the data or the candidate and
said no (contract violated, gates failed) - exit 1.
"""

from __future__ import annotations

EXIT_REGISTERED = 0
EXIT_REJECTED = 1
EXIT_UNUSABLE_INPUT = 2


class InputError(Exception):
    """The input cannot be used; the message says which input and how to fix it."""

    exit_code = EXIT_UNUSABLE_INPUT


class PipelineStopped(Exception):
    """A step stopped the pipeline; `reasons` are one line each, safe to print (never PHI)."""

    exit_code = EXIT_REJECTED

    def __init__(self, step: str, reasons: list[str]) -> None:
        self.step = step
        self.reasons = reasons
        super().__init__(f"{step} stopped the pipeline:\n" + "\n".join(f"  - {r}" for r in reasons))
