"""Pulumi entry point: `pulumi up -s <stack>` runs this; `clinops render` runs the same under mocks."""

from clinops.config import load_from_pulumi_runtime
from clinops.mesh import check_mesh
from infra.stack import build_platform, check_quotas

config = load_from_pulumi_runtime()
check_mesh(config)
check_quotas(config)
build_platform(config)
