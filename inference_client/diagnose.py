"""Why a model endpoint does not answer, in words a user can act on.

The labelers' errors say what failed for the stream (typed, PHI-free, retried); when a command gives up on an
endpoint, the user needs the URL and the cause. One GET of the readiness path, classified: connection refused,
name not resolved, TLS not trusted, timed out, refused credentials (401/403), wrong path (404), server error.
"""

from __future__ import annotations

import errno
import socket
import ssl

import httpx

from inference_client.base import _tls_verification_failed, root_url


def _causes(exc: BaseException) -> list[BaseException]:
    chain, seen = [], exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


async def diagnose_endpoint(endpoint: str, *, api: str = "openai", ca_bundle: str | None = None,
                            api_key: str | None = None, timeout_s: float = 5.0) -> str:
    """One line: "<url> <what is wrong>"; never the server's body (it may echo report text)."""
    root = root_url(endpoint)
    path = "/health" if api == "tgi" else "/v1/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
    except (OSError, ssl.SSLError) as exc:
        return f"{root}: CA file {ca_bundle} cannot be used ({type(exc).__name__}): fix labeler.ca_bundle"
    try:
        async with httpx.AsyncClient(verify=verify, timeout=timeout_s, headers=headers) as client:
            response = await client.get(root + path)
    except httpx.TimeoutException:
        return f"{root} did not answer within {timeout_s:g} s (timeout): is the host right and the server up?"
    except httpx.TransportError as exc:
        if _tls_verification_failed(exc):
            return f"{root}: TLS certificate not trusted: set labeler.ca_bundle to the issuing CA's file"
        for cause in _causes(exc):
            if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
                return f"{root} refused the connection: is the model server running on that host and port?"
            if isinstance(cause, socket.gaierror):
                return f"{root}: host name does not resolve: check the endpoint URL"
            if isinstance(cause, ssl.SSLError):
                return f"{root}: TLS handshake failed ({cause.__class__.__name__}): check https vs http and the port"
        text = str(exc).lower()
        if "refused" in text:
            return f"{root} refused the connection: is the model server running on that host and port?"
        return f"{root} cannot be reached ({type(exc).__name__})"
    status = response.status_code
    if status in (401, 403):
        return f"{root} refused the credentials (HTTP {status}): set labeler.api_key (RADLABEL_LABELER__API_KEY)"
    if status == 404:
        return f"{root}{path} answered HTTP 404: check the endpoint URL and labeler.api ({api})"
    if status >= 500:
        return f"{root} answered HTTP {status}: the server is failing or still loading the model"
    if not response.is_success:
        return f"{root}{path} answered HTTP {status}"
    return f"{root} answers {path}, but labeling failed"


__all__ = ["diagnose_endpoint"]
