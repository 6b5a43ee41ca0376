"""Label CSV files (``id`` + the 14 observation columns, CheXpert encoding) <-> numeric matrices.

Codes: 1 positive, 0 negative, -1 uncertain, NaN blank (not mentioned).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mappings.vocabulary import OBSERVATIONS, decode_csv_value

from connector.csv_cells import neutralise, restore

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
_CODE = {"positive": POSITIVE, "negative": NEGATIVE, "uncertain": UNCERTAIN}


class LabelFileError(ValueError):
    """A label file that cannot be evaluated: missing columns or ids, duplicates, bad values."""


def read_labels(path: str | Path) -> pd.DataFrame:
    """Read a label CSV into a float DataFrame indexed by ``id`` (str), columns = OBSERVATIONS in order."""
    path = Path(path)
    try:
        # utf-8-sig: a BOM before "id" (spreadsheet exports) is not part of the column name.
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelFileError(f"{path}: not UTF-8 (byte offset {exc.start}); save it as UTF-8") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LabelFileError(f"{path}: cannot read label CSV: {exc}") from exc
    missing = [c for c in ("id", *OBSERVATIONS) if c not in raw.columns]
    if missing:
        raise LabelFileError(f"{path}: missing column(s): {', '.join(missing)}")
    # `radlabel label` writes ids a spreadsheet would run as formulas with a "'" prefix: read them back as written.
    ids = raw["id"].str.strip().map(restore)
    empty = [i + 2 for i, value in enumerate(ids) if not value]
    if empty:
        raise LabelFileError(f"{path}: empty id on line(s) {_preview([str(n) for n in empty])}")
    dup = sorted(set(ids[ids.duplicated()]))
    if dup:
        raise LabelFileError(f"{path}: duplicate id(s): {_preview(dup)}")
    values = np.full((len(raw), len(OBSERVATIONS)), np.nan)
    for j, name in enumerate(OBSERVATIONS):
        for i, cell in enumerate(raw[name]):
            try:
                certainty = decode_csv_value(cell)
            except ValueError as exc:
                raise LabelFileError(f"{path}: row {i + 2}, column {name!r}: {exc}") from None
            if certainty is not None:
                values[i, j] = _CODE[certainty.value]
    return pd.DataFrame(values, index=pd.Index(ids, name="id"), columns=list(OBSERVATIONS))


def align(truth: pd.DataFrame, pred: pd.DataFrame, pred_name: str) -> pd.DataFrame:
    """Predictions re-ordered to the truth's ids. Ids missing from the predictions are an error naming them;
    extra prediction ids are ignored (the truth defines the evaluated set)."""
    missing = [i for i in truth.index if i not in pred.index]
    if missing:
        raise LabelFileError(
            f"prediction {pred_name!r} lacks {len(missing)} id(s) present in the truth: {_preview(missing)}"
        )
    return pred.loc[truth.index]


def write_labels(path: str | Path, ids: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write ``id`` + 14 encoded cells per row (cells as produced by ``LabelSet.csv_row``)."""
    frame = pd.DataFrame([list(r) for r in rows], columns=list(OBSERVATIONS))
    frame.insert(0, "id", [neutralise(i) for i in ids])
    frame.to_csv(path, index=False)


def _preview(items: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
