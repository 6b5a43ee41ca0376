"""Seeded mutation fuzzer for the HL7 path of `radlabel convert` (issue 11).

Every input is a file made by mutating the sample and fixture messages (byte flips, inserted separators and
framing bytes, escape-sequence bombs, huge hex escapes, broken times and zone offsets, truncation, splices,
charset names, noise, empty and BOM-only files). Each file goes through ``convert_files`` (the function behind
`radlabel convert`, rule labeler) on its own, and is classified:

- crash: ``convert_files`` raised (anything: the command would have died and lost the batch);
- hang: one file took longer than ``--timeout`` seconds (SIGALRM);
- unaccounted: the file produced neither a bundle nor a dead letter;
- invalid-fhir: a dead letter with reason ``invalid-fhir`` (a mapping bug reachable from input);
- peak RSS of the process (getrusage) at the end.

    PYTHONPATH=. python benchmarks/hl7_fuzz.py --seed 1 --count 20000 [--timeout 10]

The smoke run in tests/hl7_fhir/test_fuzz.py runs a few hundred inputs of the same generator. Figures: docs/HL7_FHIR.md
("Hostile input").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED_DIRS = (REPO / "connector" / "samples", REPO / "tests" / "hl7_fhir" / "fixtures")

_BOMB_KINDS = (b".sp", b".br", b".in", b".ti", b".sk", b".ce")
_BIG_COUNTS = (b"1000000000", b"100000000000000000000", b" 999999999", b"1_000_000_000", b"-5", b"", b"x", b"101")
_SPECIALS = b"|^~\\&\r\n\x0b\x1c\x00\xef\xbb\xbf"
_CHARSETS = (b"UNICODE UTF-8", b"8859/1", b"ISO IR87", b"\xff\xfe", b"", b"ASCII", b"CP1252", b"UTF-16")
_TIMES = (b"20240307143000+1500", b"20240307143000-1401", b"20240307143000+0960", b"00000000", b"99991231235959-1400",
          b"00010101000000+1400", b"20241332", b"2024030714300099", b"2024", b"20240230", b"20240307246000",
          b"20240307143060.12345", b"+0000")


def seed_messages() -> list[bytes]:
    seeds = []
    for folder in SEED_DIRS:
        for path in sorted(folder.glob("*.hl7")):
            seeds.append(path.read_bytes())
    return seeds


class Mutator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seeds = seed_messages()
        self.ops = [getattr(self, name) for name in sorted(dir(self)) if name.startswith("op_")]

    def input(self) -> tuple[str, bytes]:
        rng = self.rng
        data = rng.choice(self.seeds)
        names = []
        for _ in range(rng.randint(1, 4)):
            op = rng.choice(self.ops)
            data = op(data)
            names.append(op.__name__[3:])
        return "+".join(names), data

    def _pos(self, data: bytes) -> int:
        return self.rng.randint(0, len(data))

    def _field_pos(self, data: bytes) -> int:
        """A position just after a field separator (inside some field), or anywhere."""
        bars = [m.end() for m in re.finditer(rb"\|", data)]
        return self.rng.choice(bars) if bars else self._pos(data)

    def op_flip(self, data: bytes) -> bytes:
        b = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            if b:
                b[self.rng.randrange(len(b))] = self.rng.randrange(256)
        return bytes(b)

    def op_special(self, data: bytes) -> bytes:
        p = self._pos(data)
        return data[:p] + bytes([self.rng.choice(_SPECIALS)]) * self.rng.randint(1, 4) + data[p:]

    def op_escape_bomb(self, data: bytes) -> bytes:
        p = self._field_pos(data)
        seq = b"\\" + self.rng.choice(_BOMB_KINDS) + self.rng.choice(_BIG_COUNTS) + b"\\"
        return data[:p] + seq * self.rng.choice((1, 1, 3, 700)) + data[p:]

    def op_hex_escape(self, data: bytes) -> bytes:
        p = self._field_pos(data)
        size = self.rng.choice((1, 2, 17, 5000, 300_000))
        hexes = bytes(self.rng.choice(b"0123456789ABCDEFabcdefXZ ") for _ in range(min(size, 64))) * max(
            1, size // 64)
        return data[:p] + b"\\X" + hexes + self.rng.choice((b"\\", b"")) + data[p:]

    def op_time(self, data: bytes) -> bytes:
        stamps = [m.span() for m in re.finditer(rb"(?:19|20)\d{6,}", data)]
        if not stamps:
            return data
        p, end = self.rng.choice(stamps)
        return data[:p] + self.rng.choice(_TIMES) + data[end:]

    def op_truncate(self, data: bytes) -> bytes:
        return data[: self._pos(data)]

    def op_delete(self, data: bytes) -> bytes:
        p = self._pos(data)
        return data[:p] + data[p + self.rng.randint(1, 64) :]

    def op_duplicate(self, data: bytes) -> bytes:
        p = self._pos(data)
        q = min(len(data), p + self.rng.randint(1, 200))
        return data[:q] + data[p:q] * self.rng.choice((1, 2, 50)) + data[q:]

    def op_splice(self, data: bytes) -> bytes:
        other = self.rng.choice(self.seeds)
        return data[: self._pos(data)] + other[self.rng.randint(0, len(other)) :]

    def op_concat(self, data: bytes) -> bytes:
        return data + self.rng.choice((b"", b"\r\n", b"\n\n")) + self.rng.choice(self.seeds)

    def op_charset(self, data: bytes) -> bytes:
        first, sep, rest = data.partition(b"\r")
        fields = first.split(b"|")
        while len(fields) < 18:
            fields.append(b"")
        fields[17] = self.rng.choice(_CHARSETS)
        return b"|".join(fields) + sep + rest

    def op_encoding_chars(self, data: bytes) -> bytes:
        i = data.find(b"MSH")
        if i < 0 or len(data) < i + 8:
            return data
        chars = bytes(self.rng.choice(_SPECIALS + b"#*!A ") for _ in range(self.rng.randint(0, 6)))
        return data[: i + 4] + chars + data[data.find(b"|", i + 4) if data.find(b"|", i + 4) > 0 else i + 8 :]

    def op_noise(self, data: bytes) -> bytes:
        noise = bytes(self.rng.randrange(256) for _ in range(self.rng.choice((1, 3, 100, 4096))))
        return self.rng.choice((noise, noise + data, data + noise, data[:100] + noise + data[100:]))

    def op_blank(self, data: bytes) -> bytes:
        return self.rng.choice((b"", b" ", b"\r\n", b"\xef\xbb\xbf", b"\xbb", b"\x0b", b"\x1c\r", b"\x0b\x1c\r", b"\t"))

    def op_huge_field(self, data: bytes) -> bytes:
        p = self._field_pos(data)
        return data[:p] + b"A" * self.rng.choice((70_000, 140_000, 1_100_000)) + data[p:]

    def op_many_segments(self, data: bytes) -> bytes:
        seg = self.rng.choice((b"\rOBX|1|TX|RPT||x||||||F", b"\rOBR|1||A", b"\rPID|1||M", b"\rNTE|1||n"))
        return data + seg * self.rng.choice((10, 1000, 20_000))


@dataclass
class Figures:
    seed: int
    inputs: int = 0
    crashes: int = 0
    hangs: int = 0
    unaccounted: int = 0
    invalid_fhir: int = 0
    bundles: int = 0
    skipped: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    slowest_s: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)  # first few, with the ops that made them


class _Hang(BaseException):
    pass


def _alarm(signum, frame):  # noqa: ANN001
    raise _Hang()


def fuzz(seed: int, count: int, timeout_s: float = 10.0, keep_failures: Path | None = None) -> Figures:
    """Run ``count`` mutated files through convert_files; see the module docstring."""
    from connector.cli.convert import convert_files
    from connector.rules.labeler import RuleLabeler

    figures = Figures(seed=seed)
    mutator = Mutator(seed)
    labeler = RuleLabeler()
    reasons: Counter[str] = Counter()
    work = Path(tempfile.mkdtemp(prefix="radlabel-fuzz-"))
    previous = signal.signal(signal.SIGALRM, _alarm)
    started = time.perf_counter()
    try:
        for index in range(count):
            ops, data = mutator.input()
            source = work / f"{index}.hl7"
            source.write_bytes(data)
            out = work / "out"
            failure = None
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            try:
                counts, dead = asyncio.run(convert_files([source], out, labeler))
            except _Hang:
                figures.hangs += 1
                failure = "hang"
            except Exception as exc:  # noqa: BLE001 - counting them is the point
                figures.crashes += 1
                failure = f"crash: {type(exc).__name__}: {str(exc)[:200]}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            figures.slowest_s = max(figures.slowest_s, time.perf_counter() - t0)
            if failure is None:
                figures.bundles += counts.bundles
                figures.skipped += sum(counts.skipped.values())
                figures.dead_letters += sum(dead.reasons.values())
                reasons.update(dead.reasons)
                # accounted for: a bundle, a dead letter, or a counted skip (out of scope / asserts nothing)
                if counts.bundles + sum(counts.skipped.values()) + sum(dead.reasons.values()) == 0:
                    figures.unaccounted += 1
                    failure = "unaccounted"
                elif dead.reasons.get("invalid-fhir"):
                    figures.invalid_fhir += 1
                    failure = "invalid-fhir"
            if failure is not None:
                if len(figures.failures) < 20:
                    figures.failures.append({"index": index, "ops": ops, "failure": failure, "bytes": len(data)})
                if keep_failures is not None:
                    keep_failures.mkdir(parents=True, exist_ok=True)
                    (keep_failures / f"{index}.hl7").write_bytes(data)
            source.unlink()
            shutil.rmtree(out, ignore_errors=True)
            figures.inputs += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
        shutil.rmtree(work, ignore_errors=True)
    figures.seconds = round(time.perf_counter() - started, 1)
    figures.peak_rss_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures.slowest_s = round(figures.slowest_s, 2)
    figures.reasons = dict(sorted(reasons.items()))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per input before it counts as a hang")
    parser.add_argument("--keep-failures", type=Path, default=None, help="folder for inputs that failed")
    args = parser.parse_args()
    figures = fuzz(args.seed, args.count, args.timeout, args.keep_failures)
    result = {"machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
              "command": " ".join(sys.argv), **asdict(figures)}
    print(json.dumps(result, indent=2))
    if figures.crashes or figures.hangs or figures.unaccounted or figures.invalid_fhir:
        sys.exit(1)


if __name__ == "__main__":
    main()
