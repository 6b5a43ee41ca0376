"""Authentication to the FHIR server, as httpx.Auth flows (httpx owns the request; we only add the header).

- bearer: a fixed token from settings (env) or a file; the file is re-read once when the server answers 401, so
  a rotated secret mount is picked up without a restart.
- client-credentials: OAuth2 client credentials grant (RFC 6749 §4.4) against sink.auth.token_url, the client
  authenticated by a secret (HTTP Basic, RFC 6749 §2.3.1) or by a signed JWT assertion (RFC 7523
  private_key_jwt, as SMART Backend Services requires: iss = sub = client id, aud = token URL, jti, exp <= 5 min).
  The token is fetched before first use and again `refresh_margin_s` before it expires, and once more on a 401.
  One refresh at a time: concurrent requests wait for it instead of each asking for a token.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from urllib.parse import quote_plus

import httpx

from connector.logging import get_logger
from connector.settings import SinkAuthSettings

log = get_logger(__name__)

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class AuthConfigError(ValueError):
    """sink.auth names something unusable (an unreadable key file): a settings error, found at start-up."""


class TokenUnavailable(Exception):
    """No token could be obtained. transient: the token endpoint was unreachable or answered 5xx/429 (retry);
    otherwise it refused the client (a configuration problem)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class StaticBearer(httpx.Auth):
    def __init__(self, token: str | None, token_file: str | None) -> None:
        self._fixed = token
        self._file = Path(token_file) if token_file else None
        self._token = token or self._read_file()

    def _read_file(self) -> str:
        if self._file is None:
            return self._fixed or ""
        try:
            return self._file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenUnavailable(f"sink.auth.token_file unreadable: {exc.strerror}", transient=False) from None

    def auth_flow(self, request: httpx.Request):  # type: ignore[override]
        request.headers["authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401 and self._file is not None:
            fresh = self._read_file()
            if fresh != self._token:
                self._token = fresh
                request.headers["authorization"] = f"Bearer {self._token}"
                yield request


class ClientCredentials(httpx.Auth):
    requires_response_body = True

    def __init__(self, settings: SinkAuthSettings, *, private_key: bytes | None = None,
                 clock=time.time) -> None:
        self.settings = settings
        self._private_key = private_key
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetched = 0  # tokens obtained (tests, metrics)

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at - self.settings.refresh_margin_s

    def token_request(self) -> httpx.Request:
        s = self.settings
        form = {"grant_type": "client_credentials"}
        if s.scope:
            form["scope"] = s.scope
        headers = {"accept": "application/json"}
        if self._private_key is not None:
            form["client_assertion_type"] = JWT_BEARER_ASSERTION
            form["client_assertion"] = self._assertion()
        else:
            secret = s.client_secret.get_secret_value() if s.client_secret else ""
            if s.client_secret_method == "post":
                form["client_id"] = s.client_id or ""
                form["client_secret"] = secret
            else:
                # RFC 6749 §2.3.1: id and secret are form-encoded before the Basic encoding.
                pair = f"{quote_plus(s.client_id or '')}:{quote_plus(secret)}".encode()
                headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
        return httpx.Request("POST", s.token_url or "", data=form, headers=headers)

    def _assertion(self) -> str:
        try:
            import jwt  # PyJWT (with cryptography): only needed for private_key_jwt
        except ImportError:
            raise TokenUnavailable("sink.auth.private_key_file needs PyJWT[crypto] installed",
                                   transient=False) from None

        now = int(self._clock())
        s = self.settings
        claims = {"iss": s.client_id, "sub": s.client_id, "aud": s.token_url, "jti": str(uuid.uuid4()),
                  "iat": now, "exp": now + 300}
        headers = {"kid": s.key_id} if s.key_id else None
        return jwt.encode(claims, self._private_key, algorithm=s.private_key_alg, headers=headers)

    def _accept(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 429 or status >= 500:
            raise TokenUnavailable(f"token endpoint answered HTTP {status}", transient=True)
        if status != 200:
            raise TokenUnavailable(f"token endpoint refused the client (HTTP {status}): check sink.auth",
                                   transient=False)
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError):
            raise TokenUnavailable("token endpoint answer has no access_token", transient=False) from None
        # No expires_in (it is only RECOMMENDED): assume five minutes and refresh then.
        self._token = token
        self._expires_at = self._clock() + float(body.get("expires_in") or 300)
        self.fetched += 1
        log.info("fhir_token_refreshed", expires_in_s=int(float(body.get("expires_in") or 300)))

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        used = None
        for attempt in range(2):  # the second pass only after a 401 with the token we had
            async with self._lock:
                if not self._fresh() or (attempt and self._token == used):
                    # A transport error here propagates out of the request: the client retries it as "connection".
                    response = yield self.token_request()
                    await response.aread()
                    self._accept(response)
                used = self._token
            request.headers["authorization"] = f"Bearer {used}"
            response = yield request
            if response.status_code != 401:
                return

    def sync_auth_flow(self, request):  # pragma: no cover - the sink is async only
        raise RuntimeError("ClientCredentials is for httpx.AsyncClient")


def make_auth(settings: SinkAuthSettings, *, verify=True, timeout_s: float = 30.0) -> httpx.Auth | None:
    if settings.kind == "bearer":
        return StaticBearer(settings.token.get_secret_value() if settings.token else None, settings.token_file)
    if settings.kind == "client-credentials":
        key = None
        if settings.private_key_file:
            try:
                key = Path(settings.private_key_file).read_bytes()
            except OSError as exc:
                raise AuthConfigError(f"sink.auth.private_key_file unreadable: {exc.strerror}") from None
        return ClientCredentials(settings, private_key=key)
    return None
