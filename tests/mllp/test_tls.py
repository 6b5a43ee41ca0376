"""TLS on the MLLP listener with client-certificate authentication; certificates made by openssl per test run."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import hl7.mllp
import pytest

from connector.mllp.client import MllpSender, client_ssl_context
from connector.settings import KafkaSettings

from ..stream.kafka_io import read_all
from .conftest import running_gateway
from .messages import oru
from .mllp_io import RawClient, framed, msa


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=radlabel test CA")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=radlabel test {name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return d


async def test_tls_with_required_client_certificate(pki: Path, kafka: KafkaSettings) -> None:
    settings = dict(tls_certfile=str(pki / "server.pem"), tls_keyfile=str(pki / "server.key"),
                    tls_client_cafile=str(pki / "ca.pem"), tls_client_auth="required")
    async with running_gateway(kafka, **settings) as gateway:
        # python-hl7's client over TLS with a client certificate.
        context = client_ssl_context(False, str(pki / "ca.pem"), str(pki / "client.pem"), str(pki / "client.key"))
        reader, writer = await hl7.mllp.open_hl7_connection("127.0.0.1", gateway.port, ssl=context)
        writer.writeblock(oru(1))
        await writer.drain()
        assert msa(await asyncio.wait_for(reader.readblock(), 10)) == ("AA", "CTL0000000001")
        writer.close()
        # `radlabel send`'s client, same certificates.
        sender = MllpSender("127.0.0.1", gateway.port, ssl_context=context, timeout_s=10)
        assert (await sender.send(oru(2))).code == "AA"
        await sender.close()
        # TLS without a client certificate: the handshake fails, nothing is stored.
        no_cert = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        sender = MllpSender("127.0.0.1", gateway.port, ssl_context=no_cert, timeout_s=5)
        result = await sender.send(oru(3))
        assert result.code is None and result.error
        await sender.close()
        # Plain MLLP to a TLS port: no ACK, connection closed.
        plain = await RawClient.connect(gateway.port)
        await plain.write(framed(oru(4)))
        assert await plain.closed_by_peer()
        await plain.close()
        records = await read_all(kafka.bootstrap_servers, [kafka.input_topic], until=lambda r: len(r) >= 3,
                                 timeout_s=3)
    assert sorted(r.value for r in records) == [oru(1), oru(2)]
