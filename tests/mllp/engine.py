"""A minimal interface-engine stand-in: sends its messages in order over one MLLP connection (python-hl7's client
via `radlabel send`'s MllpSender), waits for each ACK, and resends a message until it is accepted, reconnecting
when the connection drops, as Mirth/Rhapsody do on an ACK timeout."""

from __future__ import annotations

import asyncio
import time

from connector.mllp.client import MllpSender


class Engine:
    def __init__(self, port: int, messages: list[bytes], *, ack_timeout_s: float = 5.0,
                 resend_delay_s: float = 0.2, pace_s: float = 0.0) -> None:
        self.port = port  # may be changed (gateway restarted elsewhere); used at the next reconnect
        self.messages = messages
        self.ack_timeout_s = ack_timeout_s
        self.resend_delay_s = resend_delay_s
        self.pace_s = pace_s  # pause between accepted messages (a trickle, so a fault lands mid-stream)
        self.acked: list[tuple[bytes, float]] = []  # (message, monotonic time the accepting ACK arrived)
        self.refusals: list[tuple[str | None, float]] = []  # (code or None for no ACK, time)
        self.error_acks: list[bytes] = []
        self.stop = False

    async def run(self) -> None:
        sender: MllpSender | None = None
        try:
            for message in self.messages:
                while not self.stop:
                    if sender is None:
                        sender = MllpSender("127.0.0.1", self.port, timeout_s=self.ack_timeout_s)
                    result = await sender.send(message)
                    if result.code in ("AA", "CA"):
                        self.acked.append((message, time.monotonic()))
                        if self.pace_s:
                            await asyncio.sleep(self.pace_s)
                        break
                    self.refusals.append((result.code, time.monotonic()))
                    if result.ack is not None:
                        self.error_acks.append(result.ack)
                    if result.code is None:
                        await sender.close()
                        sender = None
                    await asyncio.sleep(self.resend_delay_s)
                if self.stop:
                    return
        finally:
            if sender is not None:
                await sender.close()
