"""Report tables in, label tables out, for `radlabel label`: hostile or messy files become one clear error with
the file and line, or just work where the intent is unambiguous.

In: CSV (``id`` + ``report`` or ``text``) or JSONL (objects with ``id`` and ``report`` or ``text``). A UTF-8 BOM
and fields of any size are read; text that is not UTF-8, a JSONL line that is not a JSON object, a missing,
empty or duplicate id are refused, naming the file, line and id.

Out: written to a temporary file beside the target and renamed over it, so a reader never sees half a file;
when a run fails, an older file at the target is removed (it would look like this run's result). Cells that a
spreadsheet would run as a formula (``= + - @``, tab, CR first) are prefixed with ``'`` (OWASP CSV injection);
label cells (1, 0, -1, blank) are never touched, and the readers here and in `evaluate` strip the prefix again.
Reports that could not be labeled go to a CSV the user can pass straight back to `radlabel label --input`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel

from connector.csv_cells import neutralise, restore

# The csv module refuses fields over 128 KiB by default; a long report (or one with an appended addendum) is
# legitimate. The whole file is read into memory anyway, so the field limit adds no protection.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class ReportRow(BaseModel):
    id: str
    report: str


class InputFileError(ValueError):
    """An input table that cannot be used; the message names the file and line."""


def read_reports(path: Path) -> list[ReportRow]:
    rows = _read_jsonl(path) if path.suffix.lower() in (".jsonl", ".ndjson") else _read_csv(path)
    seen: dict[str, int] = {}
    out = []
    for line, row in rows:
        if not row.id.strip():
            raise InputFileError(f"{path}:{line}: empty id: every report needs one")
        if row.id in seen:
            raise InputFileError(f"{path}:{line}: duplicate id {row.id!r} (first on line {seen[row.id]})")
        seen[row.id] = line
        out.append(row)
    return out


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02X} at offset {exc.start}); "
                             "save the file as UTF-8") from None
    yield from enumerate(io.StringIO(text, newline=""), start=1)


def _read_jsonl(path: Path) -> Iterator[tuple[int, ReportRow]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path}:{number}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise InputFileError(f"{path}:{number}: a JSON {type(record).__name__}, not an object with id and report")
        text = record.get("report", record.get("text"))
        if record.get("id") is None:
            raise InputFileError(f"{path}:{number}: missing or null id")
        if text is None:
            raise InputFileError(f"{path}:{number}: JSONL records need id and report (or text)")
        if not isinstance(text, str):
            raise InputFileError(f"{path}:{number}: report is a JSON {type(text).__name__}, not a string")
        yield number, ReportRow(id=restore(str(record["id"])), report=text)


def _read_csv(path: Path) -> Iterator[tuple[int, ReportRow]]:
    lines = (line for _, line in _lines(path))
    reader = csv.DictReader(lines)
    try:
        fields = reader.fieldnames or []
    except csv.Error as exc:
        raise InputFileError(f"{path}:1: not a readable CSV header ({exc})") from None
    text_column = "report" if "report" in fields else "text" if "text" in fields else None
    if "id" not in fields or text_column is None:
        raise InputFileError(f"{path}: CSV needs columns id and report (or text); it has {', '.join(fields)[:200]}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputFileError(f"{path}:{reader.line_num}: {exc}") from None
        if row.get("id") is None:
            raise InputFileError(f"{path}:{reader.line_num}: missing id")
        yield reader.line_num, ReportRow(id=restore(row["id"]), report=restore(row[text_column] or ""))


@contextmanager
def atomic_csv(path: Path) -> Iterator[csv.writer]:  # type: ignore[valid-type]
    """A csv.writer on a temporary file that replaces ``path`` only when the block ends without an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield csv.writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale(path: Path) -> bool:
    """After a failed run: an older output at ``path`` would pass for this run's. True when one was removed."""
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def failed_path(output: Path) -> Path:
    return output.with_name(output.stem + ".failed.csv")


def write_failed(output: Path, failures: Iterable[tuple[ReportRow, str]]) -> Path | None:
    """Reports that could not be labeled, as an input file for a re-run (id, report, error); None when there
    were none (an older failed-file is removed, it belongs to an earlier run)."""
    target = failed_path(output)
    rows: Sequence[tuple[ReportRow, str]] = list(failures)
    if not rows:
        remove_stale(target)
        return None
    with atomic_csv(target) as writer:
        writer.writerow(["id", "report", "error"])
        for row, error in rows:
            writer.writerow([neutralise(row.id), neutralise(row.report), error])  # read_reports restores them
    return target


__all__ = ["InputFileError", "ReportRow", "atomic_csv", "failed_path", "neutralise", "read_reports",
           "remove_stale", "restore", "write_failed"]
