"""`radlabel mllp`: an asyncio MLLP listener that writes each HL7 message to the input topic and acknowledges it
only once the broker holds it.

Per connection: frames are handled one at a time in arrival order (engines send one message and wait for its
ACK), so the ACK for a message is never written before the broker has acknowledged the record (acks=all), and
the next message of that connection is not read before then. Connections run concurrently; the producer batches
their records. A crash at any point therefore loses no ACKed message: at worst the engine resends one that Kafka
already holds, and a resent message yields identical Bundles downstream (same key, same bytes, deterministic ids).

Broker down or slow: the message waits up to ``broker_timeout_s``; then the connection is closed without an ACK
(``on_broker_timeout: close``, the engine resends on a new connection) or answered AE/CE with ERR 207
(``on_broker_timeout: AE``). Readiness reports 503 until a write succeeds again.

Logs carry the peer address, a hash of MSH-10, sizes, outcome codes and latency: never message content, names,
identifiers or the control id itself (connector/logging.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from connector.hl7 import ack
from connector.logging import enabled, get_logger
from connector.mllp.framing import Frame, FrameDecoder, Garbage, Oversize, Unterminated
from connector.mllp.metrics import MllpMetrics
from connector.mllp.policy import Decision, decide
from connector.mllp.records import build_record
from connector.mllp.security import PeerFilter, server_ssl_context
from connector.settings import Settings
from connector.stream.http import HealthServer
from connector.stream.kafka_config import client_kwargs, producer_max_request_size

log = get_logger(__name__)

VT, FS_CR = b"\x0b", b"\x1c\r"
_READ_SIZE = 65_536


def control_id_hash(control_id: bytes) -> str | None:
    """A short hash of MSH-10 for logs: lets an operator match a log line to an engine's record (by hashing the
    id they hold) without writing the id."""
    return hashlib.sha256(control_id).hexdigest()[:12] if control_id else None


def frame(message: bytes) -> bytes:
    return VT + message + FS_CR


@dataclass
class _Connection:
    peer: str
    busy: bool = False  # a message is between "received" and "ACK written"
    reading: bool = False  # waiting for bytes: the only state the idle timeout applies to
    read_since: float = 0.0  # loop time the current read began
    idle_expired: bool = False
    storing: bool = False  # waiting for the broker to hold a message: the only state the broker timeout applies to
    store_since: float = 0.0
    store_expired: bool = False
    watchdog: asyncio.TimerHandle | None = None


_WATCH_TICKS = 10  # watchdog ticks per (shorter) timeout: a timeout fires at most 10 % late


class _Close(Exception):
    """Internal: end this connection without an ACK (broker timeout with on_broker_timeout=close)."""


class MllpGateway:
    def __init__(self, settings: Settings, *, topic: str | None = None, metrics: MllpMetrics | None = None,
                 http_port: int | None = None, http_host: str = "0.0.0.0",
                 on_ready: Callable[[dict], None] | None = None) -> None:
        self.settings = settings
        self.kafka = settings.kafka
        self.mllp = settings.mllp
        self.topic = topic or self.kafka.input_topic
        self.metrics = metrics or MllpMetrics()
        self.http_port = settings.http_port if http_port is None else http_port
        self.http_host = http_host
        self.on_ready = on_ready
        self.peers = PeerFilter(self.mllp.allowed_peers)
        self.ssl = server_ssl_context(self.mllp)
        self.producer: AIOKafkaProducer | None = None
        self.http: HealthServer | None = None
        self.port: int | None = None
        self.started = False
        self.failed: BaseException | None = None
        self.stop_event = asyncio.Event()
        self._broker_ok = True
        self._connections: dict[asyncio.Task, _Connection] = {}

    # -- probes ----------------------------------------------------------------------------------------------
    async def live(self) -> tuple[bool, str]:
        if self.failed is not None:
            return False, f"failed: {type(self.failed).__name__}"
        return True, "ok"

    async def ready(self) -> tuple[bool, str]:
        if not self.started:
            return False, "starting"
        if self.stop_event.is_set():
            return False, "stopping"
        if not self._broker_ok:
            return False, "broker unavailable: messages are not acknowledged"
        return True, "ready"

    # -- lifecycle -------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stop_event.set()

    def _new_producer(self) -> AIOKafkaProducer:
        # acks=all, no idempotence/transactions (the dev broker has neither; see connector/stream/app.py). linger 0:
        # a connection waits for its own record, so holding records back only adds latency; concurrent
        # connections still share batches.
        return AIOKafkaProducer(acks="all", enable_idempotence=False, linger_ms=0,
                                max_request_size=producer_max_request_size(self.kafka), **client_kwargs(self.kafka))

    async def _start_producer(self) -> None:
        delay = 0.5
        while not self.stop_event.is_set():
            producer = self._new_producer()
            try:
                await producer.start()
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning("broker_unreachable", error=type(exc).__name__, retry_in_s=delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), delay)
                delay = min(delay * 2, 10.0)
                continue
            self.producer = producer
            return

    async def run(self) -> None:
        try:
            if self.http_port is not None and self.http_port >= 0:
                self.http = HealthServer(self.metrics.registry, self.live, self.ready, self.http_host,
                                         self.http_port)
                await self.http.start()
                log.info("http_listening", port=self.http.port)
            # Listen only once the broker is reachable: an engine connected earlier would get no ACKs.
            await self._start_producer()
            if self.producer is None:
                return
            # TLS in start_server (the handshake runs before _on_connection): StreamWriter.start_tls after the
            # allow-list check would lose a ClientHello that arrived before it, so refused peers are dropped right
            # after their handshake instead.
            server = await asyncio.start_server(self._on_connection, self.mllp.host, self.mllp.port,
                                                limit=_READ_SIZE, ssl=self.ssl,
                                                ssl_handshake_timeout=30 if self.ssl else None)
            try:
                self.port = server.sockets[0].getsockname()[1]
                self.started = True
                info = {"event": "mllp_listening", "host": self.mllp.host, "port": self.port,
                        "tls": self.ssl is not None, "topic": self.topic,
                        "http_port": self.http.port if self.http else None}
                log.info("mllp_listening", port=self.port, tls=self.ssl is not None, topic=self.topic)
                if self.on_ready is not None:
                    self.on_ready(info)
                await self.stop_event.wait()
            finally:
                server.close()  # no new connections
                await self._drain_connections()
        except BaseException as exc:
            self.failed = exc
            raise
        finally:
            if self.producer is not None:
                with contextlib.suppress(Exception):
                    await self.producer.stop()
            if self.http is not None:
                await self.http.stop()
            log.info("mllp_stopped")

    async def _drain_connections(self) -> None:
        """Idle connections close now; one with a message in flight finishes it (ACK included) first."""
        for task, conn in list(self._connections.items()):
            if not conn.busy:
                task.cancel()
        pending = list(self._connections)
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.mllp.broker_timeout_s + 2)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=2)

    # -- connections -----------------------------------------------------------------------------------------
    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        address = peername[0] if isinstance(peername, tuple) else None
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        refusal = "not in allowed_peers" if not self.peers.allows(address) else "stopping" if self.stopping else None
        if refusal is not None:
            self.metrics.connections.labels("refused").inc()
            log.warning("connection_refused", peer=peer, reason=refusal)
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(peer)
        self._connections[task] = conn
        self.metrics.connections.labels("accepted").inc()
        self.metrics.connections_open.inc()
        try:
            log.info("connection_opened", peer=peer, tls=self.ssl is not None)
            await self._serve(conn, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("connection_lost", peer=peer, error=type(exc).__name__)
        except (asyncio.TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
            log.warning("connection_failed", peer=peer, error=type(exc).__name__)
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.pop(task, None)
            self.metrics.connections_open.dec()
            with contextlib.suppress(Exception):
                writer.close()
            log.info("connection_closed", peer=peer)

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(self.mllp.max_message_bytes)
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        tick = min(self.mllp.broker_timeout_s, self.mllp.idle_timeout_s or float("inf")) / _WATCH_TICKS
        conn.watchdog = loop.call_at(loop.time() + tick, self._watch, conn, task, tick)
        try:
            while not self.stopping:
                conn.read_since, conn.reading = loop.time(), True
                try:
                    data = await reader.read(_READ_SIZE)
                except asyncio.CancelledError:
                    if not conn.idle_expired:
                        raise
                    task.uncancel()
                    self.metrics.framing_errors.labels("idle-timeout").inc()
                    log.info("idle_timeout", peer=conn.peer, pending_bytes=decoder.pending_bytes)
                    break
                finally:
                    conn.reading = False
                if not data:
                    cut = decoder.close()
                    if cut is not None:
                        # The sender hung up mid-frame: nothing was ACKed, nothing is written; it resends.
                        self.metrics.framing_errors.labels("unterminated").inc()
                        log.warning("frame_cut_by_disconnect", peer=conn.peer, bytes=cut.size)
                    break
                for event in decoder.feed(data):
                    if isinstance(event, Garbage):
                        self.metrics.framing_errors.labels("garbage").inc()
                        log.warning("bytes_outside_frame", peer=conn.peer, bytes=event.size)
                        continue
                    conn.busy = True
                    try:
                        reply = await self._handle_event(event, conn)
                    except _Close:
                        return
                    finally:
                        conn.busy = False
                    if reply is not None:
                        message, started = reply
                        writer.write(frame(message))
                        await writer.drain()
                        self.metrics.ack_latency.observe(time.perf_counter() - started)
        finally:
            if conn.watchdog is not None:
                conn.watchdog.cancel()

    def _watch(self, conn: _Connection, task: asyncio.Task, tick: float) -> None:
        """The idle timeout and the broker timeout of one connection: one timer, ticking every tenth of the shorter
        timeout, instead of an ``asyncio.timeout`` around every read and every broker write (each schedules and
        cancels a timer: together about a tenth of the gateway's CPU per message, benchmarks/mllp.md). Like those,
        the idle timeout applies only while the connection waits for bytes and the broker timeout only while a
        message waits for the broker; each fires within a tick after it comes due."""
        now = asyncio.get_running_loop().time()
        idle = self.mllp.idle_timeout_s
        if conn.reading and idle and now >= conn.read_since + idle:
            conn.idle_expired, conn.watchdog = True, None
            task.cancel()
            return
        if conn.storing and not conn.store_expired and now >= conn.store_since + self.mllp.broker_timeout_s:
            conn.store_expired = True
            task.cancel()
        conn.watchdog = asyncio.get_running_loop().call_at(now + tick, self._watch, conn, task, tick)

    async def _handle_event(self, event: Frame | Oversize | Unterminated,
                            conn: _Connection) -> tuple[bytes, float] | None:
        """The ACK to send (and when the frame was complete), None when the sender asked for none."""
        started = time.perf_counter()
        received_at = time.time()
        peer = conn.peer
        if isinstance(event, Frame):
            self.metrics.bytes.inc(len(event.body))
            decision = decide(event.body, self.mllp.non_oru)
            size = len(event.body)
        else:
            kind = "oversize" if isinstance(event, Oversize) else "unterminated"
            self.metrics.framing_errors.labels(kind).inc()
            detail = (f"message exceeds the gateway limit of {self.mllp.max_message_bytes} bytes"
                      if kind == "oversize" else "MLLP frame has no end block")
            code = ack.APPLICATION_INTERNAL_ERROR if kind == "oversize" else ack.SEGMENT_SEQUENCE_ERROR
            decision = Decision("reject", ack.read_msh(event.head), ack.AckError(code, detail), kind)
            size = event.size
        msh = decision.msh
        code: ack.AckCode = "AA"
        error = decision.error
        outcome = {"store": "stored", "ack": "dropped", "reject": "rejected"}[decision.action]
        if decision.action == "reject":
            code = "AR"
        elif decision.action == "store":
            assert isinstance(event, Frame)
            key, headers = build_record(event.body, peer, msh, received_at)
            stored = await self._store(event.body, key, headers, conn)
            if stored == "too-large":
                code, outcome = "AR", "rejected"
                error = ack.AckError(ack.APPLICATION_INTERNAL_ERROR, "the broker refused the record size")
            elif stored != "stored":
                outcome = "not-stored"
                if self.mllp.on_broker_timeout == "close":
                    self._record(peer, msh, size, outcome, decision.reason, None, started)
                    raise _Close
                code = "AE"
                error = ack.AckError(ack.APPLICATION_INTERNAL_ERROR, "message not stored: broker unavailable")
        wanted = ack.ack_wanted(msh, code)
        sent = ack.ack_code(msh, code) if wanted else None
        self._record(peer, msh, size, outcome, decision.reason, sent, started)
        if not wanted:
            return None
        return ack.build_ack(msh, code, error), started

    def _record(self, peer: str, msh: ack.Msh | None, size: int, outcome: str, reason: str, sent: str | None,
                started: float) -> None:
        self.metrics.count_message(outcome)
        if sent is not None:
            self.metrics.count_ack(sent)
        if not enabled(logging.INFO):
            return  # skip hashing MSH-10 for a line that would be dropped (the default level in production is INFO)
        log.info("mllp_message", peer=peer, control_id_hash=control_id_hash(msh.control_id) if msh else None,
                 bytes=size, outcome=outcome, reason=reason, ack=sent,
                 ms=round((time.perf_counter() - started) * 1000, 2))

    async def _store(self, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]],
                     conn: _Connection) -> str:
        """'stored' once the broker holds the record; 'too-large' or 'unavailable' otherwise (also when the
        broker did not answer within mllp.broker_timeout_s: the connection's watchdog cancels the wait)."""
        assert self.producer is not None
        future: asyncio.Future | None = None
        conn.store_since, conn.storing, conn.store_expired = asyncio.get_running_loop().time(), True, False
        try:
            try:
                future = await self.producer.send(self.topic, value, key=key, headers=headers)
                # shield: a timeout stops our wait, not the producer's delivery (which may still land; a resend is
                # then a harmless duplicate).
                await asyncio.shield(future)
            except asyncio.CancelledError:
                if not conn.store_expired:
                    raise  # shutdown, not our timeout
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                raise asyncio.TimeoutError from None
            finally:
                conn.storing = False
        except (MessageSizeTooLargeError, RecordTooLargeError):
            return "too-large"
        except (asyncio.TimeoutError, KafkaError) as exc:
            if future is not None:
                future.add_done_callback(_consume_result)
            if self._broker_ok:
                log.warning("broker_unavailable", error=type(exc).__name__, timeout_s=self.mllp.broker_timeout_s)
            self._broker_ok = False
            self.metrics.broker_unavailable.set(1)
            return "unavailable"
        if not self._broker_ok:
            log.info("broker_available")
        self._broker_ok = True
        self.metrics.broker_unavailable.set(0)
        return "stored"


def _consume_result(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "exception was never retrieved" warning for an abandoned write
