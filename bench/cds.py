"""CDS Hooks latency on loopback: a discharge hook to its cards (JWT check, FHIR prefetch parsed with
fhir.resources, contract features, the model over HTTP, the card) beside the inference call alone for the same
patients, in one run; then an endpoint that hangs, where the fallback card must come within the deadline.
Target: p99 <= 50 ms with prefetch.

Model: a local pipeline run's bundle of readmission-risk (one is trained on --rows synthetic rows if OUT holds
none), served by the inference container's server; the CDS service in front of it with the dev stack's `cds`
section. Everything runs in this process on 127.0.0.1 (client, CDS server and inference server share the GIL,
as they would not in production: the numbers are an upper bound). Requests are sent one at a time on one
keep-alive connection; each hook is a different synthetic patient (row i mod 200) with a freshly minted token
(minted before timing: signing is the EHR's cost). Latency is from send to last byte.

    .venv/bin/python bench/cds.py [--requests 500] [--rows 5000] [--out out]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from clinops.config import load_from_stack_file  # noqa: E402 - the repo root goes on sys.path first
from pipelines.contracts import builtin_contract_path, load_contract  # noqa: E402
from pipelines.contracts.fhirmap import builtin_mapping_path, load_mapping  # noqa: E402
from pipelines.data.fhir import hook_request, resources_for_row  # noqa: E402
from pipelines.data.synthetic import generate_readmission  # noqa: E402
from serving.cds.features import FeatureMapper, parse_record  # noqa: E402
from serving.cds.local import start_local  # noqa: E402
from serving.cds.logs import CdsLog  # noqa: E402

MODEL = "readmission-risk"


def bundle_for(out: Path, rows: int) -> Path:
    from serving.container.locate import locate

    if not (out / "pipeline" / MODEL).is_dir():
        from pipelines.local import run_local

        print(f"no local run of {MODEL} under {out}: training one on {rows} synthetic rows ...", flush=True)
        run_local(model=MODEL, out_dir=out, rows=rows)
    return locate(MODEL, out_dir=out, tracking_uri=None, scratch=Path(tempfile.mkdtemp())).path


def timed(port: int, path: str, bodies: list[bytes], headers: list[dict[str, str]]) -> tuple[np.ndarray, list[bytes]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times, answers = [], []
    for body, head in zip(bodies, headers, strict=True):
        started = time.perf_counter()
        conn.request("POST", path, body, {"Content-Type": "application/json", **head})
        answer = conn.getresponse().read()
        times.append((time.perf_counter() - started) * 1000)
        answers.append(answer)
    conn.close()
    return np.array(times), answers


def stats(ms: np.ndarray) -> dict[str, float]:
    return {"n": int(ms.size), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--hangs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args()

    from serving.container.app import build_server
    from serving.container.logs import EventLog
    from serving.container.settings import ServerSettings

    config = load_from_stack_file("dev", ROOT)
    cds = next(m for m in config.models if m.name == MODEL).cds
    inference = build_server(
        ServerSettings.from_env(model_dir=bundle_for(args.out, args.rows), host="127.0.0.1", port=0),
        EventLog("bench", io.StringIO()),
    )
    threading.Thread(target=inference.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state = Path(tempfile.mkdtemp(prefix="bench-cds-"))
    server, ehr, _ = start_local(config, MODEL, f"http://127.0.0.1:{inference.server_address[1]}", state, port=0,
                                 log=CdsLog(io.StringIO()))  # fmt: skip
    path = f"/cds-services/{MODEL}"
    audience = f"http://127.0.0.1:{server.server_address[1]}{path}"

    contract, mapping = load_contract(builtin_contract_path(MODEL)), load_mapping(builtin_mapping_path(MODEL))
    mapper = FeatureMapper(mapping, contract)
    rows = generate_readmission(200, seed=21).to_dict("records")
    patients = [resources_for_row(r, mapping, contract, alternate_units=bool(i % 2)) for i, r in enumerate(rows)]
    hooks = [json.dumps(hook_request(cds.hook, cds.prefetch, p)).encode() for p in patients]
    features = []
    for p in patients:
        extraction = mapper.extract(parse_record(p.resources, p.patient_id, p.encounter_id), p.now)
        features.append(json.dumps(extraction.features).encode())
    n, warm = args.requests, 50
    pick = [i % len(patients) for i in range(n + warm)]
    tokens = [{"Authorization": f"Bearer {ehr.token(audience)}"} for _ in pick]

    timed(inference.server_address[1], "/invocations", [features[i] for i in pick[:warm]], [{}] * warm)
    timed(server.server_address[1], path, [hooks[i] for i in pick[:warm]], tokens[:warm])
    # interleaved in blocks so both see the same machine load
    hook_ms, infer_ms, kinds = [], [], {"risk": 0, "fallback": 0}
    for start in range(warm, warm + n, 50):
        block = pick[start : start + 50]
        ms, answers = timed(server.server_address[1], path, [hooks[i] for i in block], tokens[start : start + 50])
        hook_ms.append(ms)
        for a in answers:
            kinds["fallback" if "model unavailable" in json.loads(a)["cards"][0]["summary"] else "risk"] += 1
        infer_ms.append(
            timed(inference.server_address[1], "/invocations", [features[i] for i in block], [{}] * len(block))[0]
        )
    server.shutdown()

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # accepts, never answers: an endpoint that hangs
    hung, ehr, _ = start_local(config, MODEL, f"http://127.0.0.1:{silent.getsockname()[1]}", state, port=0,
                               log=CdsLog(io.StringIO()))  # fmt: skip
    hung_audience = f"http://127.0.0.1:{hung.server_address[1]}{path}"
    hang_tokens = [{"Authorization": f"Bearer {ehr.token(hung_audience)}"} for _ in range(args.hangs)]
    hang_ms, answers = timed(
        hung.server_address[1], path, [hooks[i % len(hooks)] for i in range(args.hangs)], hang_tokens
    )
    fallbacks = sum("did not answer" in json.loads(a)["cards"][0]["detail"] for a in answers)
    hung.shutdown()

    result = {
        "hook_to_cards_with_prefetch": stats(np.concatenate(hook_ms)),
        "inference_call_alone": stats(np.concatenate(infer_ms)),
        "cards": kinds,
        "endpoint_hangs": {**stats(hang_ms), "deadline_ms": cds.deadline_ms, "fallback_cards": fallbacks},
        "target_p99_ms": 50,
    }
    result["target_met"] = (
        result["hook_to_cards_with_prefetch"]["p99_ms"] <= 50
        and fallbacks == args.hangs
        and result["endpoint_hangs"]["max_ms"] <= cds.deadline_ms
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
