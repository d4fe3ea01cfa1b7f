"""Container entry point: `python -m serving.container serve` (SageMaker runs `docker run IMAGE serve`).

Binds 0.0.0.0 on port 8080 (or SAGEMAKER_BIND_TO_PORT) and serves the bundle in SM_MODEL_DIR
(default /opt/ml/model) with SAGEMAKER_MODEL_SERVER_WORKERS worker processes (default: one per CPU); exits 0
after draining on SIGTERM. Standard library only at this level: the image carries no CLI framework.
"""

from __future__ import annotations

import sys

from serving.container.settings import ServerSettings, SettingsError
from serving.container.workers import serve

USAGE = "usage: python -m serving.container serve"


def main(argv: list[str]) -> int:
    if argv not in ([], ["serve"]):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        settings = ServerSettings.from_env(host="0.0.0.0")  # SageMaker reaches the container from outside it
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
