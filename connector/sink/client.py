"""The FHIR HTTP client of the sink: one httpx.AsyncClient, bounded retries, typed outcomes.

- 2xx: the answer.
- 429, 5xx, timeouts, connection errors, token endpoint trouble: retried with full-jitter exponential backoff
  (inference_client.resilience.RetryPolicy, the labeler's policy), a server's Retry-After honoured up to a bound;
  when the retries are spent, FhirUnavailable: the shared loop pauses the partitions and retries the batch later
  (the sink stays in its group and commits nothing past the failure).
- 409 / 412: FhirConflict (someone changed the report between our read and our write): the caller re-reads.
- 401 / 403: FhirUnavailable too, not a dead letter: a credential or permission problem is the site's
  configuration, and dead-lettering every record until someone notices would empty the stream into the DLQ.
- any other 4xx: FhirRejected with the server's OperationOutcome: this bundle is the problem (a dead letter).

Nothing here logs a URL with a query (search values are identifiers) or a body.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime

import httpx
import orjson

from inference_client.resilience import RetryPolicy

from connector.logging import get_logger
from connector.settings import SinkSettings
from connector.sink.auth import TokenUnavailable, make_auth
from connector.sink.metrics import SinkMetrics

log = get_logger(__name__)

FHIR_JSON = "application/fhir+json"


class FhirUnavailable(Exception):
    """The server did not accept the request within the retry budget (or refused our credentials)."""


class FhirConflict(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"FHIR server answered HTTP {status} (concurrent change)")
        self.status = status


class FhirRejected(Exception):
    """A 4xx about this request's content: the server's OperationOutcome is kept for the dead letter."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"FHIR server rejected the transaction (HTTP {status})")
        self.status = status
        self.body = body


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification always on; a site CA is added to the system's, not substituted for it."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _tls_refused(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # httpx wraps httpcore's error, which wraps the ssl module's
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class FhirClient:
    def __init__(self, settings: SinkSettings, metrics: SinkMetrics, *, transport: httpx.AsyncBaseTransport | None = None,
                 rng: random.Random | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not settings.fhir_url:
            raise ValueError("sink.fhir_url (--fhir-url) is required")
        self.metrics = metrics
        self.policy = RetryPolicy(max_retries=settings.max_retries, base_s=settings.backoff_s,
                                  cap_s=settings.backoff_max_s, max_retry_after_s=settings.retry_after_max_s)
        self.rng = rng or random.Random()
        self.sleep = sleep
        verify = ssl_context(settings.ca_file)
        self.http = httpx.AsyncClient(
            base_url=settings.fhir_url.rstrip("/") + "/",
            timeout=settings.timeout_s,
            verify=verify,
            transport=transport,
            auth=make_auth(settings.auth, verify=verify, timeout_s=settings.timeout_s),
            headers={"accept": FHIR_JSON},
            limits=httpx.Limits(max_connections=settings.max_in_flight * 2,
                                max_keepalive_connections=settings.max_in_flight * 2),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- FHIR interactions -----------------------------------------------------------------------------------
    async def transaction(self, bundle: dict | bytes) -> httpx.Response:
        """POST [base] the transaction (a Bundle, or one already serialised). `Prefer: return=minimal`: the sink
        needs the status only, so a server that honours it does not send every resource back (one that does not:
        the body is not parsed either)."""
        started = time.perf_counter()
        content = bundle if isinstance(bundle, bytes) else orjson.dumps(bundle)
        response = await self._request("POST", "", content=content,
                                       headers={"content-type": FHIR_JSON, "prefer": "return=minimal"},
                                       kind="transaction")
        self.metrics.request_seconds.observe(time.perf_counter() - started)
        return response

    async def read(self, resource_type: str, resource_id: str) -> dict | None:
        response = await self._request("GET", f"{resource_type}/{resource_id}", kind="read", missing_ok=True)
        return None if response.status_code in (404, 410) else response.json()

    async def read_many(self, resource_type: str, ids: list[str]) -> dict[str, dict | None]:
        """Several reads in one round trip (a FHIR `batch` of GETs): id -> resource, or None when the server has
        none. An id whose entry answered anything else is left out (the caller reads it alone). Raises
        FhirRejected when the server refuses batches."""
        bundle = {"resourceType": "Bundle", "type": "batch",
                  "entry": [{"request": {"method": "GET", "url": f"{resource_type}/{i}"}} for i in ids]}
        response = await self._request("POST", "", content=orjson.dumps(bundle), headers={"content-type": FHIR_JSON},
                                       kind="batch-read")
        out: dict[str, dict | None] = {}
        for resource_id, entry in zip(ids, response.json().get("entry") or ()):
            status = str((entry.get("response") or {}).get("status", "")).split(" ", 1)[0]
            if status == "200" and (entry.get("resource") or {}).get("id") == resource_id:
                out[resource_id] = entry["resource"]
            elif status in ("404", "410"):
                out[resource_id] = None
        return out

    async def search(self, resource_type: str, params: dict[str, str]) -> list[dict]:
        """Every match, following the server's `next` links (bounded, for a broken server)."""
        out: list[dict] = []
        response = await self._request("GET", resource_type, params=params, kind="search")
        for _ in range(50):
            page = response.json()
            out.extend(e["resource"] for e in page.get("entry") or () if "resource" in e
                       and (e.get("search") or {}).get("mode", "match") == "match")
            following = next((link.get("url") for link in page.get("link") or () if link.get("relation") == "next"),
                             None)
            if not following:
                break
            response = await self._request("GET", following, kind="search")
        return out

    # -- retries ---------------------------------------------------------------------------------------------
    async def _request(self, method: str, url: str, *, kind: str, missing_ok: bool = False,
                       **kwargs) -> httpx.Response:
        last = ""
        for attempt in range(self.policy.max_retries + 1):
            retry_after = None
            try:
                response = await self.http.request(method, url, **kwargs)
            except httpx.TimeoutException:
                last = "timeout"
            except httpx.TransportError as exc:
                if _tls_refused(exc):  # not transient: retrying cannot make the certificate trusted
                    raise FhirUnavailable("TLS verification of the FHIR server failed: is its CA in the system "
                                          "store or in sink.ca_file?") from None
                last = "connection"
            except TokenUnavailable as exc:
                last = "token"
                if not exc.transient:
                    raise FhirUnavailable(str(exc)) from None
            else:
                status = response.status_code
                if status < 300 or (missing_ok and status in (404, 410)):
                    return response
                if status == 429 or status >= 500:
                    last = str(status)
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                elif status in (401, 403):
                    # make_auth's flows already refreshed the token once on a 401.
                    raise FhirUnavailable(f"FHIR server refused the sink's credentials (HTTP {status}): check "
                                          "sink.auth and the client's permissions")
                elif status in (409, 412):
                    raise FhirConflict(status)
                else:
                    raise FhirRejected(status, response.content)
            if attempt == self.policy.max_retries:
                break
            delay = self.policy.delay(attempt, self.rng, retry_after)
            self.metrics.retried.labels(last).inc()
            log.info("fhir_retry", request=kind, attempt=attempt + 1, cause=last, delay_s=round(delay, 3))
            await self.sleep(delay)
        raise FhirUnavailable(f"FHIR server unavailable ({self.policy.max_retries + 1} attempts, last: {last})")
