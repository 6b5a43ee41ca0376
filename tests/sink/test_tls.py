"""TLS to the FHIR server: verification stays on; a site CA given as sink.ca_file is trusted in addition to the
system store; an untrusted server is reported at once (no retries) as a hold, naming sink.ca_file. The server is
the Medplum engine behind a TLS-terminating proxy with an openssl-made CA and certificate."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from prometheus_client import CollectorRegistry

from connector.settings import SinkSettings
from connector.sink.client import FhirClient, FhirUnavailable
from connector.sink.metrics import SinkMetrics

from tests.mllp.tcp_proxy import TcpProxy
from tests.mllp.test_tls import pki  # noqa: F401 - the openssl-made CA and server certificate


class TlsProxy(TcpProxy):
    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        super().__init__(target_port, 0)
        self.context = context

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, 0, ssl=self.context)
        self.port = self._server.sockets[0].getsockname()[1]


async def test_site_ca_is_trusted_and_an_unknown_one_is_refused(medplum, pki):  # noqa: F811
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    proxy = TlsProxy(int(medplum.url.rsplit(":", 1)[1]), context)
    await proxy.up()
    url = f"https://127.0.0.1:{proxy.port}"
    try:
        metrics = SinkMetrics(CollectorRegistry())
        trusted = FhirClient(SinkSettings(fhir_url=url, ca_file=str(pki / "ca.pem")), metrics)
        assert await trusted.read("Patient", "nobody") is None  # a real answer (404) through TLS
        await trusted.aclose()
        untrusted = FhirClient(SinkSettings(fhir_url=url, max_retries=3), metrics)
        with pytest.raises(FhirUnavailable, match="sink.ca_file"):
            await untrusted.read("Patient", "nobody")
        await untrusted.aclose()
        assert metrics.retried.labels("connection")._value.get() == 0  # refused at once, not retried
    finally:
        await proxy.down()
