"""`radlabel publish` and `radlabel send`: put HL7 files on the input topic directly, or push them to an MLLP
listener (the gateway, or any engine) and report each ACK. The two share the gateway's record building, so a
file published and the same file sent through the gateway give the same records (value, key)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from connector.hl7.ack import BOM, read_msh
from connector.hl7.framing import END_BLOCK, START_BLOCK, split_messages


def file_messages(data: bytes) -> Iterator[bytes]:
    """The messages of a file as they go on the wire: an MLLP frame's content unchanged; a plain ER7 message with
    its segments ended by CR (HL7's terminator; files often use LF), surrounding whitespace and a BOM removed."""
    for chunk in split_messages(data):
        stripped = chunk.strip(b" \t\r\n")
        if stripped.startswith(START_BLOCK):
            body = stripped[1:]
            end = body.rfind(END_BLOCK)
            body = body[:end] if end >= 0 else body
        else:
            body = stripped[len(BOM):] if stripped.startswith(BOM) else stripped
            body = body.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b" \t\r") + b"\r"
        if body.strip(b" \t\r\n"):
            yield body


def files_messages(files: list[Path]) -> list[tuple[Path, int, bytes]]:
    """(file, 1-based position in the file, message) for every message of the files, in order."""
    return [(path, n, message) for path in files for n, message in enumerate(file_messages(path.read_bytes()), 1)]


# -- publish ---------------------------------------------------------------------------------------------------
async def publish_messages(messages: list[bytes], kafka: object, topic: str) -> list[tuple[int, int]]:
    """Produce (acks=all) with the gateway's keys and headers; (partition, offset) per message, in order."""
    from aiokafka import AIOKafkaProducer

    from connector.mllp.records import build_record
    from connector.stream.kafka_config import client_kwargs, producer_max_request_size

    producer = AIOKafkaProducer(acks="all", enable_idempotence=False, linger_ms=5,
                                max_request_size=producer_max_request_size(kafka),  # type: ignore[arg-type]
                                **client_kwargs(kafka))  # type: ignore[arg-type]
    await producer.start()
    try:
        futures = []
        for message in messages:
            key, headers = build_record(message, None)
            futures.append(await producer.send(topic, message, key=key, headers=headers))
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


# -- send ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendResult:
    code: str | None  # MSA-1 of the ACK; None when none came
    ack: bytes | None
    error: str | None = None


def client_ssl_context(tls: bool, cafile: str | None, certfile: str | None, keyfile: str | None
                       ) -> ssl.SSLContext | None:
    if not (tls or cafile or certfile):
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


def ack_code_of(reply: bytes) -> str | None:
    """MSA-1 of an ACK (read with the same never-raising reader as the gateway's headers)."""
    msh = read_msh(reply)
    if msh is None:
        return None
    for segment in reply.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA" + msh.separator):
            fields = segment.split(msh.separator)
            return fields[1].decode("ascii", "replace") if len(fields) > 1 else None
    return None


class MllpSender:
    """One MLLP connection, one message at a time (python-hl7's asyncio MLLP client does the framing)."""

    def __init__(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                 timeout_s: float = 30.0, server_hostname: str | None = None) -> None:
        self.host, self.port, self.ssl, self.timeout_s = host, port, ssl_context, timeout_s
        self.server_hostname = server_hostname
        self._streams: tuple | None = None

    async def _connect(self) -> tuple:
        import hl7.mllp

        if self._streams is None:
            kwargs = {"ssl": self.ssl, "server_hostname": self.server_hostname or self.host} if self.ssl else {}
            self._streams = await asyncio.wait_for(
                hl7.mllp.open_hl7_connection(self.host, self.port, limit=64 * 1_048_576, **kwargs), self.timeout_s)
        return self._streams

    async def send(self, message: bytes) -> SendResult:
        try:
            reader, writer = await self._connect()
            writer.writeblock(message)
            await writer.drain()
            reply = await asyncio.wait_for(reader.readblock(), self.timeout_s)
        except asyncio.TimeoutError:
            await self.close()
            return SendResult(None, None, "no ACK within the timeout")
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            return SendResult(None, None, f"connection closed without ACK ({type(exc).__name__})")
        return SendResult(ack_code_of(reply), reply)

    async def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is not None:
            writer = streams[1]
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
