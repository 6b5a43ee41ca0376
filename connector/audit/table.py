"""Audit tables on disk: CSV (for people and spreadsheets) or Parquet (pyarrow, for data tools), chosen by the file
suffix, and read back into pandas for `audit diff` and `audit report`.

CSV text cells a spreadsheet would run as a formula get a "'" prefix (connector/csv_cells.py; evidence is report
text, which may start with "-"); :func:`read_table` strips it again. Both writers replace the target only when
the whole table is written (a reader never sees half a file).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from connector.csv_cells import neutralise, restore

FORMATS = (".csv", ".parquet")


class TableError(ValueError):
    """A table that cannot be written or read as an audit table (suffix, missing columns)."""


def check_suffix(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise TableError(f"{path}: the table must end in .csv or .parquet")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return neutralise(value)
    return str(value)


def write_table(rows: Sequence[dict], columns: Sequence[str], path: Path, int_columns: Sequence[str] = ()) -> None:
    check_suffix(path)
    if path.suffix.lower() == ".csv":
        from connector.cli.tables import atomic_csv

        with atomic_csv(path) as writer:
            writer.writerow(columns)
            writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [pa.field(c, pa.int64() if c in int_columns else pa.bool_() if c == "fallback" else pa.string())
              for c in columns]
    schema = pa.schema(fields)
    table = pa.Table.from_pydict({c: [row.get(c) for row in rows] for c in columns}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_table(path: Path, required: Sequence[str] = ()) -> pd.DataFrame:
    """An export (CSV or Parquet) as a DataFrame of strings, with the integer and boolean columns typed."""
    check_suffix(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
            for column in frame.columns:
                frame[column] = frame[column].map(restore)
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise TableError(f"{path}: not UTF-8 (byte offset {exc.start}); give an `audit export` CSV or Parquet") from None
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # pyarrow's ArrowInvalid is a ValueError: a damaged or foreign Parquet file.
        raise TableError(f"{path}: cannot read it as an audit export ({type(exc).__name__})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise TableError(f"{path}: not an audit export (missing column(s): {', '.join(missing)})")
    if "fallback" in frame.columns and not pd.api.types.is_bool_dtype(frame["fallback"]):
        frame["fallback"] = frame["fallback"].astype(str).isin(["true", "True"])
    for column in ("source_partition", "source_offset", "source_timestamp"):
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce").astype("Int64")
    for column in frame.columns:
        if pd.api.types.is_string_dtype(frame[column]) or pd.api.types.is_object_dtype(frame[column]):
            frame[column] = frame[column].fillna("")
    return frame
