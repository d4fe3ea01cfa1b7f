"""Pulumi entry point: `pulumi up -s <stack>` runs this; `clinops render` runs the same under mocks."""

from clinops.config import load_from_pulumi_runtime
from infra.stack import build_platform

build_platform(load_from_pulumi_runtime())
