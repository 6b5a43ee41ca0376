"""A pass-through HTTP proxy that counts requests in flight at the upstream server (concurrency tests)."""

from __future__ import annotations

import asyncio

import httpx

from inference_client.llamacpp_server import free_port


class CountingProxy:
    """A pass-through HTTP proxy (ASGI on uvicorn) that records how many requests are in flight upstream."""

    HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.in_flight = 0
        self.max_in_flight = 0
        self.forwarded = 0
        self.paths: list[str] = []  # "METHOD /path" of every forwarded request
        self._client: httpx.AsyncClient | None = None
        self._server = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope, receive, send) -> None:  # ASGI
        assert scope["type"] == "http" and self._client is not None
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in self.HOP]
        path = scope["path"] + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            upstream = await self._client.request(scope["method"], path, content=body, headers=headers)
        except httpx.HTTPError:
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        finally:
            self.in_flight -= 1
        self.forwarded += 1
        self.paths.append(f"{scope['method']} {scope['path']}")
        out = [(k.encode(), v.encode()) for k, v in upstream.headers.items() if k.lower() not in self.HOP]
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": out})
        await send({"type": "http.response.body", "body": upstream.content})

    async def __aenter__(self) -> CountingProxy:
        import uvicorn

        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=120)
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._task is not None and self._client is not None
        self._server.should_exit = True
        await self._task
        await self._client.aclose()
