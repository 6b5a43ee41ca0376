"""Faults with real parts: the broker frozen or restarted mid-stream, the gateway SIGKILLed mid-stream.
Invariant everywhere: no message is acknowledged unless the topic holds it, and resends lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import signal
import time
import uuid
from pathlib import Path

import httpx

from connector.settings import KafkaSettings
from connector.stream.broker import LocalBroker, create_topics, find_tansu, free_port

from ..stream.kafka_io import read_all
from .conftest import running_gateway
from .engine import Engine
from .gateway_proc import start_gateway
from .messages import oru
from .mllp_io import parse_ack
from .tcp_proxy import TcpProxy


def own_topics(bootstrap: str) -> KafkaSettings:
    suffix = uuid.uuid4().hex[:8]
    return KafkaSettings(bootstrap_servers=bootstrap, input_topic=f"in-{suffix}", output_topic=f"out-{suffix}",
                         dead_letter_topic=f"dlq-{suffix}")


async def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_broker_frozen_no_ack_until_written_then_resends_lose_nothing(tmp_path: Path) -> None:
    """SIGSTOP freezes the broker with its data (Tansu keeps topics in memory only, so a frozen broker is the way
    to stop it mid-stream and still check every message afterwards)."""
    with LocalBroker(log_path=tmp_path / "tansu.log") as local:
        kafka = own_topics(local.bootstrap_servers)
        await create_topics(local.bootstrap_servers, {kafka.input_topic: 3})
        # enough that the engines are still sending when the broker freezes, however busy the machine is
        messages = [oru(i) for i in range(600)]
        async with running_gateway(kafka, broker_timeout_s=1.0, on_broker_timeout="close") as gateway:
            engines = [Engine(gateway.port, messages[k::3], ack_timeout_s=3.0) for k in range(3)]
            tasks = [asyncio.create_task(e.run()) for e in engines]
            try:
                assert await wait_until(lambda: sum(len(e.acked) for e in engines) >= 15, 30)
                os.kill(local.pid, signal.SIGSTOP)
                frozen_at = time.monotonic()
                await asyncio.sleep(3.5)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http.port}") as http:
                    ready = await http.get("/readyz")
                thawed_at = time.monotonic()
                os.kill(local.pid, signal.SIGCONT)
                await asyncio.wait_for(asyncio.gather(*tasks), 60)
            finally:
                os.kill(local.pid, signal.SIGCONT)
                for e in engines:
                    e.stop = True
            # A produce response already on its way may land just after the freeze; none later.
            during = [t for e in engines for _, t in e.acked if frozen_at + 0.5 < t < thawed_at]
            assert during == [], f"{len(during)} messages acknowledged while the broker was frozen"
            assert ready.status_code == 503 and "broker unavailable" in ready.text
            assert any(code is None for e in engines for code, _ in e.refusals), "no ACK (connection closed)"
            records = await read_all(local.bootstrap_servers, [kafka.input_topic],
                                     until=lambda r: {x.value for x in r} >= set(messages), timeout_s=20)
    acked = {m for e in engines for m, _ in e.acked}
    assert acked == set(messages)
    stored = {r.value for r in records}
    assert stored == set(messages), "every message is in the topic after the resends"
    # Resends may duplicate (a write that landed after the gateway gave up): identical value and key.
    keys = {}
    for r in records:
        assert keys.setdefault(r.value, r.key) == r.key


async def test_broker_stopped_answers_ae_then_recovers_without_loss(tmp_path: Path) -> None:
    """The broker goes away (open connections reset, new ones refused) and comes back. Tansu is reached through
    a proxy it advertises as its address, so "stopped" is the proxy going down while the broker keeps its
    in-memory data (restarting Tansu itself would empty it, and a restarted Tansu acknowledged racing writes
    it then did not serve: see docs/MLLP.md). With on_broker_timeout=AE the engine gets AE + ERR 207, never AA,
    until the broker is back; its resends then lose nothing."""
    broker_port, proxy_port = free_port(), free_port()
    url = f"tcp://127.0.0.1:{broker_port}"
    with open(tmp_path / "tansu.log", "wb") as log:
        tansu = subprocess.Popen([str(find_tansu()), "broker", "--listener-url", url, "--advertised-listener-url",
                                  f"tcp://127.0.0.1:{proxy_port}", "--storage-engine", "memory://tansu/",
                                  "--cluster-id", "radlabel-mllp-test"], stdout=log, stderr=log)
    proxy = TcpProxy(broker_port, proxy_port)
    try:
        await proxy.up()
        bootstrap = f"127.0.0.1:{proxy_port}"
        for _ in range(100):
            with contextlib.suppress(Exception):
                await create_topics(bootstrap, {"probe": 1})
                break
            await asyncio.sleep(0.1)
        kafka = own_topics(bootstrap)
        await create_topics(bootstrap, {kafka.input_topic: 2})
        messages = [oru(i) for i in range(40)]
        async with running_gateway(kafka, broker_timeout_s=1.0, on_broker_timeout="AE") as gateway:
            engine = Engine(gateway.port, messages, resend_delay_s=0.3, pace_s=0.05)
            task = asyncio.create_task(engine.run())
            assert await wait_until(lambda: len(engine.acked) >= 10, 30)
            await proxy.down()
            stopped_at = time.monotonic()
            await asyncio.sleep(3)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http.port}") as http:
                ready = await http.get("/readyz")
            restarted_at = time.monotonic()
            await proxy.up()
            await asyncio.wait_for(task, 90)
            records = await read_all(bootstrap, [kafka.input_topic],
                                     until=lambda r: {x.value for x in r} >= set(messages), timeout_s=20)
    finally:
        await proxy.down()
        tansu.terminate()
        tansu.wait(10)
    acked_during = [m for m, t in engine.acked if stopped_at + 0.5 < t < restarted_at]
    assert acked_during == []
    assert ready.status_code == 503
    errors = [parse_ack(a) for a in engine.error_acks]
    assert len(errors) >= 2 and all(str(e.segment("MSA")[1]) == "AE" for e in errors)
    assert all(str(e.segment("ERR")[3]).startswith("207^") for e in errors)
    assert {m for m, _ in engine.acked} == set(messages)
    assert {r.value for r in records} == set(messages), "every message is in the topic after the resends"


async def test_gateway_sigkilled_every_acked_message_is_stored(kafka: KafkaSettings, tmp_path: Path) -> None:
    messages = [oru(i) for i in range(400)]
    proc, info = start_gateway(kafka, tmp_path / "gateway.log")
    engines = [Engine(info["port"], messages[k::4], ack_timeout_s=3.0, resend_delay_s=0.1) for k in range(4)]
    tasks = [asyncio.create_task(e.run()) for e in engines]
    try:
        assert await wait_until(lambda: sum(len(e.acked) for e in engines) >= 60, 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # ACKs written before the kill may still sit in the engines' socket buffers: let them be read, then no
        # more may come.
        await asyncio.sleep(0.5)
        acked_at_kill = {m for e in engines for m, _ in e.acked}
        await asyncio.sleep(1.0)
        assert {m for e in engines for m, _ in e.acked} == acked_at_kill, "no ACK from a dead gateway"
        assert all(not t.done() for t in tasks), "engines are resending"
        stored = await read_all(kafka.bootstrap_servers, [kafka.input_topic],
                                until=lambda r: {x.value for x in r} >= acked_at_kill, timeout_s=20)
        assert acked_at_kill <= {r.value for r in stored}, "an acknowledged message is missing"
        assert len(acked_at_kill) < len(messages), "the kill landed mid-stream"
        # A new gateway (another port); the engines reconnect and resend what was not acknowledged.
        proc, info = start_gateway(kafka, tmp_path / "gateway2.log")
        for e in engines:
            e.port = info["port"]
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    finally:
        for e in engines:
            e.stop = True
        proc.kill()
        proc.wait(10)
    final = await read_all(kafka.bootstrap_servers, [kafka.input_topic],
                           until=lambda r: {x.value for x in r} >= set(messages), timeout_s=30)
    assert {r.value for r in final} == set(messages)


async def test_broker_timeout_is_bounded_and_the_connection_goes_on(tmp_path: Path) -> None:
    """mllp.broker_timeout_s is kept by the connection's watchdog (no timer per message): a message the frozen
    broker does not take is answered AE after the timeout, at most one watchdog tick (a tenth) late, and the same
    connection's next message, once the broker is back, is stored and answered AA."""
    with LocalBroker(log_path=tmp_path / "tansu.log") as local:
        kafka = own_topics(local.bootstrap_servers)
        await create_topics(local.bootstrap_servers, {kafka.input_topic: 1})
        async with running_gateway(kafka, broker_timeout_s=1.0, on_broker_timeout="AE") as gateway:
            reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
            try:
                async def send(message: bytes) -> tuple[str, float]:
                    started = time.monotonic()
                    writer.write(b"\x0b" + message + b"\x1c\r")
                    reply = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 30)
                    return str(parse_ack(reply[1:-2]).segment("MSA")[1]), time.monotonic() - started

                assert (await send(oru(1)))[0] == "AA"
                os.kill(local.pid, signal.SIGSTOP)
                try:
                    code, waited = await send(oru(2))
                finally:
                    os.kill(local.pid, signal.SIGCONT)
                assert code == "AE"
                assert 1.0 <= waited < 1.6, waited  # the timeout plus one tick (0.1 s) plus scheduling slack
                code, _ = await send(oru(3))
                assert code == "AA"
            finally:
                writer.close()
