"""Incremental MLLP frame decoder for the server side (sans I/O: bytes in, events out).

MLLP: <VT 0x0B> message <FS 0x1C><CR 0x0D>. The decoder is fed whatever a socket read returns, so a frame may
arrive in many reads and one read may hold several frames. It reports, in stream order:

- :class:`Frame`: a complete message (the bytes between VT and FS, unchanged);
- :class:`Oversize`: a frame longer than the limit; only its first ``head_bytes`` are kept (enough to read the
  MSH for the reject ACK), the rest is discarded as it arrives, so a huge frame costs no memory;
- :class:`Unterminated`: a frame cut short by the next VT (the sender restarted without an end block);
- :class:`Garbage`: bytes outside any frame that are not whitespace (whitespace after FS, such as the CR of a
  lenient sender split across reads, is ignored).

An FS not followed by CR still ends the frame: senders differ, and FS never occurs inside HL7 text.
python-hl7's server reader (hl7.mllp) is not used here: it drops the connection on an oversize frame and raises on
bytes before VT, while the gateway must answer both and keep the connection; it also is one of the independent
clients the gateway is tested against, which only means something if the two sides share no framing code.
"""

from __future__ import annotations

from dataclasses import dataclass

VT = 0x0B
FS = 0x1C
_VT = b"\x0b"
_FS = b"\x1c"
_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True)
class Frame:
    body: bytes


@dataclass(frozen=True)
class Oversize:
    head: bytes
    size: int


@dataclass(frozen=True)
class Unterminated:
    head: bytes
    size: int


@dataclass(frozen=True)
class Garbage:
    size: int


Event = Frame | Oversize | Unterminated | Garbage


class FrameDecoder:
    def __init__(self, max_bytes: int, head_bytes: int = 65_536) -> None:
        self.max_bytes = max_bytes
        self.head_bytes = min(head_bytes, max_bytes)
        self._inside = False
        self._buf = bytearray()
        self._size = 0

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not ended (a disconnect now truncates it)."""
        return self._inside

    @property
    def pending_bytes(self) -> int:
        return self._size if self._inside else 0

    def feed(self, data: bytes) -> list[Event]:
        n = len(data)
        if not self._inside and n > 2 and data[0] == VT and data[-2] == FS and data[-1] == 0x0D \
                and n - 3 <= self.max_bytes and data.find(_FS, 1) == n - 2 and data.find(_VT, 1) < 0:
            # The usual read: exactly one whole frame (an engine sends one message and waits for its ACK). Same
            # event as the loop below yields for it, without the buffer copies.
            return [Frame(data[1:-2])]
        events: list[Event] = []
        i = 0
        while i < n:
            if not self._inside:
                start = data.find(_VT, i)
                stop = start if start >= 0 else n
                if stop > i and data[i:stop].strip(_WHITESPACE):
                    events.append(Garbage(stop - i))
                if start < 0:
                    break
                self._inside, self._size = True, 0
                self._buf.clear()
                i = start + 1
                continue
            end = data.find(_FS, i)
            restart = data.find(_VT, i, end if end >= 0 else n)
            if restart >= 0:
                self._append(data, i, restart)
                events.append(Unterminated(bytes(self._buf[: self.head_bytes]), self._size))
                self._inside = False
                i = restart
                continue
            if end < 0:
                self._append(data, i, n)
                break
            self._append(data, i, end)
            if self._size > self.max_bytes:
                events.append(Oversize(bytes(self._buf), self._size))
            else:
                events.append(Frame(bytes(self._buf)))
            self._inside = False
            self._buf.clear()
            i = end + 1
        return events

    def _append(self, data: bytes, start: int, stop: int) -> None:
        length = stop - start
        if length <= 0:
            return
        before = self._size
        self._size += length
        if self._size <= self.max_bytes:
            self._buf += data[start:stop]
        elif before <= self.max_bytes:
            # Crossed the limit: keep only the head (for the MSH), drop the rest from now on.
            self._buf += data[start:stop]
            del self._buf[self.head_bytes:]

    def close(self) -> Unterminated | None:
        """End of stream: the open frame, if any, was never terminated."""
        if not self._inside:
            return None
        self._inside = False
        event = Unterminated(bytes(self._buf[: self.head_bytes]), self._size)
        self._buf.clear()
        return event
