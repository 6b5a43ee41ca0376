"""The sink's FHIR client against the real Medplum engine with injected failures, and its auth flows (a bearer
token; an OAuth2 client-credentials round trip against a token endpoint started here)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from pydantic import SecretStr
from prometheus_client import CollectorRegistry

from connector.settings import SinkAuthSettings, SinkSettings
from connector.sink.auth import JWT_BEARER_ASSERTION
from connector.sink.client import FhirClient, FhirRejected, FhirUnavailable
from connector.sink.metrics import SinkMetrics

from tests.sink.bundles import bundle
from tests.sink.conftest import start_medplum


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        await asyncio.sleep(min(seconds, 0.01))


def client(url: str, sleeps: Sleeps | None = None, **kw) -> tuple[FhirClient, SinkMetrics]:
    metrics = SinkMetrics(CollectorRegistry())
    settings = SinkSettings(fhir_url=url, **{"max_retries": 3, "backoff_s": 0.01, **kw})
    return FhirClient(settings, metrics, sleep=sleeps if sleeps is not None else Sleeps()), metrics


async def test_transient_failures_are_retried_with_retry_after(medplum):
    sleeps = Sleeps()
    fhir, metrics = client(medplum.url, sleeps)
    try:
        medplum.control(fail={"count": 2, "status": 503, "retryAfter": "7", "method": "POST"})
        answer = await fhir.transaction(bundle("CL1", "F", {"Edema": "?"}))
        assert answer.status_code == 200 and answer.json()["type"] == "transaction-response"
        assert sleeps == [7.0, 7.0]  # the server's Retry-After, not our backoff
        medplum.control(fail={"count": 1, "status": 429, "method": "POST"})
        await fhir.transaction(bundle("CL1", "F", {"Edema": "?"}))
        assert len(sleeps) == 3 and sleeps[2] <= 0.01  # no Retry-After: jittered backoff
        assert metrics.retried.labels("503")._value.get() == 2 and metrics.retried.labels("429")._value.get() == 1
        # Retry-After is honoured only up to its bound
        fhir2, _ = client(medplum.url, sleeps, retry_after_max_s=2)
        medplum.control(fail={"count": 1, "status": 503, "retryAfter": "3600", "method": "POST"})
        await fhir2.transaction(bundle("CL1", "F", {"Edema": "?"}))
        assert sleeps[-1] == 2.0
        await fhir2.aclose()
    finally:
        await fhir.aclose()


async def test_budget_spent_is_unavailable_and_4xx_is_rejected_with_the_outcome(medplum):
    fhir, _ = client(medplum.url)
    try:
        medplum.control(fail={"count": 10, "status": 502})
        with pytest.raises(FhirUnavailable, match="4 attempts, last: 502"):
            await fhir.transaction(bundle("CL2", "F", {"Edema": "?"}))
        assert medplum.counters()["failed"] == 4
        medplum.control(fail={"count": 0})
        broken = bundle("CL2", "F", {"Edema": "?"})
        broken["entry"][-1]["request"]["url"] = "Provenance/not-its-id"  # the server refuses: id != URL
        with pytest.raises(FhirRejected) as exc:
            await fhir.transaction(broken)
        assert exc.value.status == 400
        assert json.loads(exc.value.body)["resourceType"] == "OperationOutcome"
    finally:
        await fhir.aclose()


async def test_timeouts_and_refused_connections_are_transient(medplum):
    fhir, metrics = client(medplum.url, timeout_s=0.2, max_retries=1)
    medplum.control(delayMs=1000)
    try:
        with pytest.raises(FhirUnavailable, match="last: timeout"):
            await fhir.read("Patient", "nobody")
    finally:
        medplum.control(delayMs=0)
        await fhir.aclose()
    fhir, metrics = client("http://127.0.0.1:9", max_retries=1)
    try:
        with pytest.raises(FhirUnavailable, match="last: connection"):
            await fhir.read("Patient", "nobody")
        assert metrics.retried.labels("connection")._value.get() == 1
    finally:
        await fhir.aclose()


async def test_bearer_token_from_a_file_is_reread_after_401(tmp_path):
    server = start_medplum(tokens="first")
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    fhir, _ = client(server.url, auth=SinkAuthSettings(kind="bearer", token_file=str(token_file)))
    try:
        assert await fhir.read("Patient", "nobody") is None  # 404 read through auth
        server.control(tokens=["second"])  # the server rotated it; so did the secret mount
        token_file.write_text("second\n")
        assert await fhir.read("Patient", "nobody") is None
        server.control(tokens=["third"])  # nobody told us: a credential problem pauses, never dead-letters
        with pytest.raises(FhirUnavailable, match="HTTP 401"):
            await fhir.read("Patient", "nobody")
    finally:
        await fhir.aclose()
        server.process.terminate()
        server.process.wait(timeout=10)


class TokenEndpoint:
    """A minimal OAuth2 token endpoint: client_secret_basic, issues tok-1, tok-2, ... with a short lifetime."""

    def __init__(self, client_id: str, secret: str | None, expires_in: int, public_key=None) -> None:
        outer = self
        self.issued: list[str] = []
        self.forms: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers["content-length"])
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                outer.forms.append(form)
                if public_key is not None:  # private_key_jwt (RFC 7523), as SMART Backend Services checks it
                    import jwt

                    try:
                        claims = jwt.decode(form.get("client_assertion", ""), public_key, algorithms=["RS384"],
                                            audience=outer.url)
                        ok = (form.get("client_assertion_type") == JWT_BEARER_ASSERTION
                              and claims["iss"] == claims["sub"] == client_id and claims["exp"] - claims["iat"] <= 300
                              and jwt.get_unverified_header(form["client_assertion"]).get("kid") == "k1")
                    except jwt.PyJWTError:
                        ok = False
                elif "client_secret" in form:  # client_secret_post
                    ok = form["client_id"] == client_id and form.pop("client_secret") == secret
                    form.pop("client_id")
                else:
                    expected = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
                    ok = self.headers.get("authorization") == expected
                if form.get("grant_type") != "client_credentials" or not ok:
                    self._answer(401, {"error": "invalid_client"})
                    return
                outer.issued.append(f"tok-{len(outer.issued) + 1}")
                self._answer(200, {"access_token": outer.issued[-1], "token_type": "bearer", "expires_in": expires_in})

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_oauth2_client_credentials_round_trip():
    endpoint = TokenEndpoint("radlabel-sink", "s3cret", expires_in=3)
    server = start_medplum(tokens="tok-1,tok-2,tok-3,tok-4")
    auth = SinkAuthSettings(kind="client-credentials", token_url=endpoint.url, client_id="radlabel-sink",
                            client_secret="s3cret", scope="system/Observation.write", refresh_margin_s=1.5)
    fhir, _ = client(server.url, auth=auth)
    try:
        # concurrent first requests share one token request
        answers = await asyncio.gather(*(fhir.read("Patient", f"p{i}") for i in range(5)))
        assert answers == [None] * 5 and endpoint.issued == ["tok-1"]
        assert endpoint.forms[0] == {"grant_type": "client_credentials", "scope": "system/Observation.write"}
        await fhir.transaction(bundle("CL3", "F", {"Edema": "?"}))
        assert endpoint.issued == ["tok-1"]
        time.sleep(1.6)  # within refresh_margin_s of expiry: refreshed before use
        await fhir.read("Patient", "p")
        assert endpoint.issued == ["tok-1", "tok-2"]
        server.control(tokens=["tok-3"])  # the server revoked tok-2: one refresh on the 401, then success
        assert await fhir.read("Patient", "p") is None
        assert endpoint.issued[-1] == "tok-3"
        assert server.counters()["unauthorized"] == 1
        # a client the endpoint refuses is a configuration error: unavailable (pause), not a dead letter
        bad, _ = client(server.url, auth=auth.model_copy(update={"client_secret": SecretStr("wrong")}))
        with pytest.raises(FhirUnavailable, match="token endpoint refused the client"):
            await bad.read("Patient", "p")
        await bad.aclose()
        # the secret as form fields (client_secret_post), for providers that expect it there
        post, _ = client(server.url, auth=auth.model_copy(update={"client_secret_method": "post"}))
        server.control(tokens=[f"tok-{len(endpoint.issued) + 1}"])
        assert await post.read("Patient", "p") is None
        assert endpoint.forms[-1] == {"grant_type": "client_credentials", "scope": "system/Observation.write"}
        await post.aclose()
    finally:
        await fhir.aclose()
        endpoint.close()
        server.process.terminate()
        server.process.wait(timeout=10)


async def test_oauth2_private_key_jwt(tmp_path):
    """SMART Backend Services style: the client proves itself with a JWT signed by its private key (RS384)."""
    pytest.importorskip("jwt")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "client.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    endpoint = TokenEndpoint("radlabel-sink", None, expires_in=300, public_key=key.public_key())
    server = start_medplum(tokens="tok-1")
    auth = SinkAuthSettings(kind="client-credentials", token_url=endpoint.url, client_id="radlabel-sink",
                            private_key_file=str(key_file), key_id="k1")
    fhir, _ = client(server.url, auth=auth)
    try:
        assert await fhir.read("Patient", "p") is None
        assert endpoint.issued == ["tok-1"] and "authorization" not in endpoint.forms[0]
        # another key: the endpoint refuses the assertion, the sink reports a configuration error
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        bad, _ = client(server.url, auth=auth)
        with pytest.raises(FhirUnavailable, match="token endpoint refused the client"):
            await bad.read("Patient", "p")
        await bad.aclose()
    finally:
        await fhir.aclose()
        endpoint.close()
        server.process.terminate()
        server.process.wait(timeout=10)
