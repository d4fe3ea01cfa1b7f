"""The CrossGuard policy pack. From the repository root:

    pulumi preview -s prod --policy-pack policies --policy-pack-config policies/config/prod.json

Constructing `PolicyPack` starts the analyzer's gRPC server and blocks, so nothing else may import this file.
"""

import sys
from pathlib import Path

# Pulumi runs the pack with policies/ as the program directory; the rules import `policies.*` and `clinops.*`
# from the repository root, and must not see policies/'s own modules as top-level ones (`plan`, `model`).
_PACK_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _PACK_DIR]
sys.path.insert(0, str(_PACK_DIR.parent))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies.pack import PACK_NAME, stack_policies  # noqa: E402

PolicyPack(PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=stack_policies())
