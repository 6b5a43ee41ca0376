"""A real HTTP labeling service that can be switched to failing (503) and back, and a Labeler that calls it.

The service labels with the real rule labeler; the client maps 503 / connection errors to LabelerUnavailable,
as the model-server clients do.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from connector.rules.labeler import RuleLabeler
from mappings.labels import Labeler, LabelerInfo, LabelerUnavailable, LabelSet


class FlakyLabelService:
    def __init__(self) -> None:
        self.failing = False
        self.requests = 0
        self.failed_requests = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                service.requests += 1
                if service.failing:
                    service.failed_requests += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                texts = json.loads(body)["reports"]
                sets = asyncio.run(RuleLabeler().label_batch(texts))
                payload = json.dumps([{k: v.value for k, v in s.labels.items()} for s in sets]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyLabelService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class HttpLabeler(Labeler):
    info = LabelerInfo(name="http-test", version="1", model="flaky-service")

    def __init__(self, url: str) -> None:
        self.client = httpx.AsyncClient(base_url=url, timeout=5)

    async def label_batch(self, reports: Sequence[str]) -> list[LabelSet]:
        try:
            response = await self.client.post("/label", json={"reports": list(reports)})
        except httpx.TransportError as exc:
            raise LabelerUnavailable(type(exc).__name__) from exc
        if response.status_code >= 500:
            raise LabelerUnavailable(f"HTTP {response.status_code}")
        response.raise_for_status()
        return [LabelSet(labels=labels, labeler=self.info) for labels in response.json()]

    async def aclose(self) -> None:
        await self.client.aclose()
