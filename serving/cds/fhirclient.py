"""Reads the EHR's FHIR server when the hook's prefetch lacks a key (CDS Hooks 2.0: `fhirServer` with the
`fhirAuthorization` bearer token). The error names the status, never the query (it holds patient ids)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Protocol


class FhirFetchError(Exception):
    pass


class FhirFetcher(Protocol):
    def fetch(self, server: str, query: str, access_token: str, timeout: float) -> dict[str, Any] | None: ...


class HttpFhirFetcher:
    def __init__(self, *, allow_http: bool = False) -> None:
        self.allow_http = allow_http  # loopback demos only: a real EHR's FHIR server is https

    def fetch(self, server: str, query: str, access_token: str, timeout: float) -> dict[str, Any] | None:
        if not (server.startswith("https://") or (self.allow_http and server.startswith("http://"))):
            raise FhirFetchError("fhirServer must be an https URL")
        request = urllib.request.Request(
            server.rstrip("/") + "/" + query.lstrip("/"),
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/fhir+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise FhirFetchError(f"the FHIR server answered HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise FhirFetchError(f"the FHIR server could not be read ({type(exc).__name__})") from None
