"""The CDS Hooks 2.0 service, free of HTTP framing: `CdsService.handle(method, path, headers, body)`.

    GET  /cds-services                     discovery: one service per model with a `cds` section
    POST /cds-services/{id}                the hook: FHIR prefetch -> contract features -> model -> cards
    POST /cds-services/{id}/feedback       accepted / overridden, recorded without PHI
    OPTIONS (any)                          CORS preflight, only for configured EHR origins

Every call but a preflight carries the EHR's signed JWT (`serving.cds.auth`), or is answered 401. A hook
call always answers 200 with a card within the model's deadline: the risk card when every guardrail allows
it, otherwise the fallback card saying why (circuit open or rolled back and which version answers, a
monitoring alarm, features missing or outside the contract by name, the endpoint failing or too slow).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clinops.models import ModelConfig, fill_prefetch_template
from pipelines.contracts import builtin_contract_path, load_contract
from pipelines.contracts.fhirmap import builtin_mapping_path, load_mapping
from serving.cds.auth import Caller, JwtVerifier, Unauthorized
from serving.cds.cards import band_of, fallback_card, risk_card
from serving.cds.features import FeatureMapper, parse_record
from serving.cds.feedback import (
    EncounterHasher,
    FeedbackError,
    FeedbackRecorder,
    IssuedCard,
    IssuedCards,
    parse_feedback,
)
from serving.cds.fhirclient import FhirFetcher, FhirFetchError
from serving.cds.guardrails import GuardrailView
from serving.cds.logs import CdsLog
from serving.cds.scoring import Scorer, ScoringError

PREFIX = "/cds-services"
DEADLINE_MARGIN_SECONDS = 0.02  # answer this much before the deadline: framing and the network back to the EHR
MAX_BODY_BYTES = 5 * 1024 * 1024


@dataclass
class Response:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CdsSettings:
    base_url: str  # the URL the EHR calls, e.g. https://cds.hospital.example (the JWT's audience starts with it)
    stack: str
    issuers: dict[str, str]  # allowed JWT issuer -> its JWKS URL
    allowed_origins: frozenset[str] = frozenset()


@dataclass
class ModelService:
    model: ModelConfig
    mapper: FeatureMapper
    scorer: Scorer

    @property
    def id(self) -> str:
        assert self.model.cds_service_id is not None
        return self.model.cds_service_id


def model_services(
    models: list[ModelConfig], scorers: dict[str, Scorer], only: set[str] | None = None
) -> list[ModelService]:
    """Every model of the stack with a `cds` section (or those in `only`), its mapping checked against its
    contract and its prefetch; a model without a scorer is an error, not a silent gap in discovery."""
    out = []
    for model in models:
        if model.cds is None or (only is not None and model.name not in only):
            continue
        mapper = FeatureMapper(
            load_mapping(builtin_mapping_path(model.name)), load_contract(builtin_contract_path(model.name))
        )
        fetched = {t.split("/")[0].split("?")[0] for t in model.cds.prefetch.values()}
        lacking = sorted(mapper.mapping.resource_types - fetched)
        if lacking:
            raise ValueError(
                f"models[{model.name}].cds.prefetch reads no {lacking}; fix: add a prefetch template for each"
            )
        if model.name not in scorers:
            raise ValueError(f"no scorer for model {model.name}")
        out.append(ModelService(model, mapper, scorers[model.name]))
    return out


class CdsService:
    def __init__(
        self,
        settings: CdsSettings,
        services: list[ModelService],
        verifier: JwtVerifier,
        guardrails: GuardrailView,
        fetcher: FhirFetcher,
        feedback: FeedbackRecorder,
        *,
        hasher: EncounterHasher | None = None,
        issued: IssuedCards | None = None,
        log: CdsLog | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        workers: int = 32,
    ) -> None:
        self.settings, self.verifier, self.guardrails = settings, verifier, guardrails
        self.fetcher, self.feedback, self.now = fetcher, feedback, now
        self.services = {s.id: s for s in services}
        self.log = log or CdsLog()
        self.hasher = hasher  # None: encounters are not hashed (discovery answers no hook)
        self.issued = issued or IssuedCards()
        # Hook work runs here so the request thread can stop waiting at the deadline; a hung endpoint holds a
        # worker, never the EHR. When every worker hangs, new calls wait in the queue and fall back on time.
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cds-hook")
        # Issuance records (hash the encounter, write the record) run apart from the hook work, so a hung
        # endpoint cannot hold them up, and a slow store never holds the card past the deadline.
        self.records = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cds-record")

    # -- framing-free entry point ------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        path = path.split("?", 1)[0].rstrip("/")
        headers = {k.lower(): v for k, v in headers.items()}
        origin = headers.get("origin")
        cors = self._cors(origin)
        if method == "OPTIONS":
            return Response(204 if cors else 403, None, cors)
        response = self._route(method, path, headers, body)
        response.headers.update(cors)
        return response

    def _cors(self, origin: str | None) -> dict[str, str]:
        if not origin or origin not in self.settings.allowed_origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }

    def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        parts = path.removeprefix(PREFIX).strip("/").split("/") if path.startswith(PREFIX) else None
        if parts is None or len(parts) > 2 or (len(parts) == 2 and parts[1] != "feedback"):
            return Response(404, {"error": "Not Found"})
        service = self.services.get(parts[0]) if parts[0] else None
        if parts[0] and service is None:
            return Response(404, {"error": "Not Found", "services": sorted(self.services)})
        wanted = "GET" if not parts[0] else "POST"
        if method != wanted:
            return Response(405, {"error": "Method Not Allowed"}, {"Allow": wanted})
        try:
            caller = self.verifier.verify(headers.get("authorization"), self.settings.base_url.rstrip("/") + path)
        except Unauthorized as exc:
            self.log.event("unauthorized", path_kind=_path_kind(parts), auth=exc.reason)
            return Response(401, {"error": "Unauthorized"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if service is None:
            return Response(200, self.discovery())
        if len(body) > MAX_BODY_BYTES:
            return Response(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
        try:
            request = json.loads(body)
        except ValueError:
            return Response(400, {"error": "the body is not JSON"})
        if len(parts) == 2:
            return self._feedback(service, caller, request)
        return self._hook(service, request)

    # -- discovery -------------------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        out = []
        for service in self.services.values():
            cds = service.model.cds
            assert cds is not None
            out.append(
                {
                    "hook": cds.hook,
                    "title": cds.title,
                    "description": service.model.description,
                    "id": service.id,
                    "prefetch": dict(cds.prefetch),
                    "usageRequirements": "Signed JWT (CDS Hooks 2.0); Observation, Condition and Encounter read "
                    "access for the prefetch or through fhirAuthorization.",
                }
            )
        return {"services": out}

    # -- hook ------------------------------------------------------------------------------------------

    def _hook(self, service: ModelService, request: Any) -> Response:
        cds = service.model.cds
        assert cds is not None
        started = time.perf_counter()
        problem = _request_problem(request, cds.hook)
        if problem:
            return Response(400, {"error": problem})
        deadline = started + cds.deadline_ms / 1000
        future = self.pool.submit(self._evaluate, service, request, deadline)
        try:
            card, issued = future.result(timeout=max(0.0, deadline - DEADLINE_MARGIN_SECONDS - time.perf_counter()))
        except FutureTimeout:
            why = f"the model did not answer within the {cds.deadline_ms} ms deadline"
            card, issued = self._fallback(service, request, "deadline", why)
        except Exception as exc:  # a fault of this service: still a card, never a stack trace to the EHR
            card, issued = self._fallback(service, request, "service-fault", "the decision-support service failed")
            self.log.event("service_fault", service=service.id, error=type(exc).__name__)
        self._record(service, card["uuid"], issued, request.get("context", {}).get("encounterId"), deadline)
        self.log.event(
            "hook",
            service=service.id,
            hook=cds.hook,
            card="risk" if issued.kind == "risk" else "fallback",
            hold=None if issued.kind == "risk" else issued.kind,
            model_version=issued.model_version,
            band=issued.band,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return Response(200, {"cards": [card]})

    def _fallback(self, service: ModelService, request: Any, kind: str, why: str) -> tuple[dict[str, Any], IssuedCard]:
        return fallback_card(service.model, why), IssuedCard(service.model.name, None, kind, None, None)

    def _record(
        self, service: ModelService, card_id: str, issued: IssuedCard, encounter_id: Any, deadline: float
    ) -> None:
        """Hash the encounter and record the card where every instance finds it, waiting at most until the
        deadline; a record still being written then completes behind the answer."""

        def record() -> None:
            hashed = None
            if self.hasher is not None and isinstance(encounter_id, str) and encounter_id:
                try:
                    hashed = self.hasher.hash(encounter_id)
                except Exception as exc:  # the card stands; its feedback just cannot name the encounter
                    self.log.event("encounter_unhashed", service=service.id, error=type(exc).__name__)
            stamped = dataclasses.replace(issued, encounter_hash=hashed, issued_at=self.now().isoformat())
            self.issued.add(service.model.name, card_id, stamped)

        future = self.records.submit(record)
        left = deadline - DEADLINE_MARGIN_SECONDS - time.perf_counter()
        try:
            if left <= 0:  # the answer is already due: the record completes behind it
                raise FutureTimeout
            future.result(timeout=left)
        except FutureTimeout:
            future.add_done_callback(lambda f: self._unrecorded(service, f))
        except Exception as exc:
            self.log.event("issuance_unrecorded", service=service.id, error=type(exc).__name__)

    def _unrecorded(self, service: ModelService, future: Any) -> None:
        if future.exception() is not None:
            self.log.event("issuance_unrecorded", service=service.id, error=type(future.exception()).__name__)

    def _evaluate(
        self, service: ModelService, request: dict[str, Any], deadline: float
    ) -> tuple[dict[str, Any], IssuedCard]:
        hold = self.guardrails.hold(service.model.name)
        if hold is not None:
            card, issued = self._fallback(service, request, hold.kind, hold.reason)
            version = str(hold.answering_version) if hold.answering_version else None
            return card, dataclasses.replace(issued, model_version=version)
        context = request["context"]
        items, failed = self._gather(service, request, deadline)
        record = parse_record(items, context["patientId"], context.get("encounterId"))
        extraction = service.mapper.extract(record, self.now())
        if failed and not extraction.usable:
            return self._fallback(service, request, "fhir-unavailable", "the patient's FHIR data could not be read")
        if not extraction.usable:
            reasons = []
            if extraction.missing:
                reasons.append("features missing: " + ", ".join(extraction.missing))
            if extraction.outside:
                reasons.append("features outside the model's contract: " + "; ".join(extraction.outside))
            self.log.event(
                "features_unusable", service=service.id, missing=extraction.missing, outside=extraction.outside
            )
            return self._fallback(service, request, "features", "; ".join(reasons))
        try:
            score = service.scorer.score(extraction.features, timeout=max(0.001, deadline - time.perf_counter()))
        except ScoringError as exc:
            return self._fallback(service, request, "endpoint", f"the model endpoint gave no usable answer ({exc})")
        assert service.model.cds is not None
        band = band_of(service.model.cds, score.probability)
        return risk_card(service.model, score), IssuedCard(
            service.model.name, score.model_version, "risk", band.label, None
        )

    def _gather(self, service: ModelService, request: dict[str, Any], deadline: float) -> tuple[list[Any], int]:
        """Prefetched resources, plus what the EHR's FHIR server returns for each missing prefetch key."""
        cds = service.model.cds
        assert cds is not None
        prefetch = request.get("prefetch") or {}
        items, failed = [], 0
        for key, template in cds.prefetch.items():
            value = prefetch.get(key)
            if value is not None:
                items.append(value)
                continue
            query = fill_prefetch_template(template, request["context"])
            auth = request.get("fhirAuthorization") or {}
            if query is None or not request.get("fhirServer") or not auth.get("access_token"):
                continue  # nothing to fetch with: the features it would have given count as missing
            try:
                fetched = self.fetcher.fetch(
                    request["fhirServer"], query, auth["access_token"], max(0.001, deadline - time.perf_counter())
                )
            except FhirFetchError:
                failed += 1
                continue
            if fetched is not None:
                items.append(fetched)
        return items, failed

    # -- feedback --------------------------------------------------------------------------------------

    def _feedback(self, service: ModelService, caller: Caller, request: Any) -> Response:
        try:
            items = parse_feedback(request)
        except FeedbackError as exc:
            return Response(400, {"error": str(exc)})
        try:
            self.feedback.record(service.model.name, f"cds-hooks:{caller.issuer}", items, self.issued)
        except Exception as exc:  # the EHR cannot fix our evidence store; say so without detail
            self.log.event("feedback_unrecorded", service=service.id, error=type(exc).__name__)
            return Response(503, {"error": "feedback could not be recorded; retry later"})
        overridden = sum(i.outcome == "overridden" for i in items)
        self.log.event("feedback", service=service.id, items=len(items), outcome={"overridden": overridden})
        return Response(200, {})


def _path_kind(parts: list[str]) -> str:
    return "discovery" if not parts[0] else ("feedback" if len(parts) == 2 else "hook")


def _request_problem(request: Any, hook: str) -> str | None:
    if not isinstance(request, dict):
        return "the hook request must be a JSON object"
    if request.get("hook") != hook:
        return f"hook: this service answers {hook}"
    if not isinstance(request.get("hookInstance"), str):
        return "hookInstance: required"
    context = request.get("context")
    if not isinstance(context, dict) or not isinstance(context.get("patientId"), str):
        return "context.patientId: required"
    if hook == "encounter-discharge" and not isinstance(context.get("encounterId"), str):
        return "context.encounterId: required by encounter-discharge"
    if request.get("prefetch") is not None and not isinstance(request["prefetch"], dict):
        return "prefetch: must be an object of key -> FHIR resource"
    return None
