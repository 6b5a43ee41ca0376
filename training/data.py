"""Dataset builders: every source becomes a list of :class:`Example` (id, report text, labels).

Sources:
- MIMIC-CXR layout: ``mimic-cxr-2.0.0-chexpert.csv`` (subject_id, study_id, 14 columns 1/0/-1/blank) joined on
  study id with the report files ``files/pXX/p<subject>/s<study>.txt``;
- a generic CSV or JSONL table with ``id``, ``report`` and the 14 label columns (CheXpert CSV encoding);
- silver labels: any report corpus labeled by a :class:`mappings.labels.Labeler` (the rule labeler), which is how
  the paper's training labels were made. IU X-ray reports load with :func:`load_iu_reports`.

:func:`split` is deterministic and leak-free: it hashes the normalised report text, so the same report (IU X-ray
repeats many normal reports verbatim) can never sit on both sides, whatever its id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from mappings.labels import Labeler
from mappings.vocabulary import OBSERVATIONS, Certainty, decode_csv_value, encode_csv_value
from pydantic import BaseModel, ConfigDict, Field


class DatasetError(ValueError):
    """A dataset file is missing columns or holds values outside the CheXpert encoding."""


class Example(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    report: str = Field(min_length=1)
    labels: dict[str, Certainty] = Field(default_factory=dict)


def _labels_from_row(row: dict, where: str) -> dict[str, Certainty]:
    out: dict[str, Certainty] = {}
    for name in OBSERVATIONS:
        try:
            value = decode_csv_value(row.get(name))
        except ValueError as exc:
            raise DatasetError(f"{where}, column {name!r}: {exc}") from None
        if value is not None:
            out[name] = value
    return out


def _require(columns: Iterable[str], needed: Sequence[str], where: str) -> None:
    missing = [c for c in needed if c not in set(columns)]
    if missing:
        raise DatasetError(f"{where}: missing columns {missing}")


def load_table(path: str | Path) -> list[Example]:
    """Generic labeled table: .csv or .jsonl with id, report and the 14 CheXpert columns."""
    path = Path(path)
    if path.suffix in (".jsonl", ".ndjson"):
        frame = pd.read_json(path, lines=True, dtype=False)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    _require(frame.columns, ("id", "report", *OBSERVATIONS), str(path))
    examples = []
    for i, row in enumerate(frame.to_dict("records")):
        report = str(row["report"] or "").strip()
        if not report:
            raise DatasetError(f"{path}, row {i + 2}: empty report")
        examples.append(Example(id=str(row["id"]), report=report, labels=_labels_from_row(row, f"{path}, row {i + 2}")))
    return examples


def load_mimic(chexpert_csv: str | Path, reports_root: str | Path) -> list[Example]:
    """MIMIC-CXR: labels by study from the CheXpert CSV, text from ``s<study_id>.txt`` under ``reports_root``.

    Studies without a report file are skipped (MIMIC ships a few); the count is reported by the caller via len().
    """
    frame = pd.read_csv(chexpert_csv, dtype=str, keep_default_na=False)
    _require(frame.columns, ("study_id", *OBSERVATIONS), str(chexpert_csv))
    files = {p.stem.lstrip("s"): p for p in Path(reports_root).rglob("s*.txt")}
    examples = []
    for i, row in enumerate(frame.to_dict("records")):
        study = str(row["study_id"]).strip()
        path = files.get(study)
        if path is None:
            continue
        report = path.read_text(encoding="utf-8", errors="replace").strip()
        if report:
            examples.append(Example(id=f"s{study}", report=report,
                                    labels=_labels_from_row(row, f"{chexpert_csv}, row {i + 2}")))
    return examples


_IU_SECTIONS = (("indication", "INDICATION"), ("comparison", "COMPARISON"), ("findings", "FINDINGS"),
                ("impression", "IMPRESSION"))


def iu_report_text(row: dict) -> str:
    """IU X-ray sections as one report, in the layout of the HL7 feed and gold-dev ("FINDINGS: ...")."""
    parts = []
    for column, heading in _IU_SECTIONS:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            parts.append(f"{heading}: {value.strip()}")
    return "\n".join(parts)


def load_iu_reports(path: str | Path, exclude_uids: Iterable[str] = (), splits: Sequence[str] | None = None
                    ) -> list[tuple[str, str]]:
    """(id, text) for the IU X-ray reports.csv, minus ``exclude_uids`` (gold-dev) and reports with no findings or
    impression (nothing to label)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    _require(frame.columns, ("uid", "findings", "impression"), str(path))
    excluded = {str(u) for u in exclude_uids}
    out = []
    for row in frame.to_dict("records"):
        if row["uid"] in excluded or (splits and row.get("split") not in splits):
            continue
        if not (row["findings"].strip() or row["impression"].strip()):
            continue
        out.append((f"iu-{row['uid']}", iu_report_text(row)))
    return out


def lockbox_uids() -> set[str]:
    """IU uids of the annotated set's lock-box (training/annotation/data/lockbox_uids.csv)."""
    return gold_dev_uids(Path(__file__).parent / "annotation" / "data" / "lockbox_uids.csv")


def gold_dev_uids(gold_reports_csv: str | Path) -> set[str]:
    frame = pd.read_csv(gold_reports_csv, dtype=str, keep_default_na=False)
    _require(frame.columns, ("uid",), str(gold_reports_csv))
    return set(frame["uid"])


def silver_label(reports: Sequence[tuple[str, str]], labeler: Labeler, batch_size: int = 64) -> list[Example]:
    """Label a corpus with a labeler (the rule labeler): the paper's training labels came from one. Texts that assert
    nothing get all-blank targets, the same rule serving applies (mappings.labels.label_texts), so the model is never
    taught "report pending" -> No Finding."""
    from mappings.labels import LabelerError, label_texts

    async def run() -> list[Example]:
        out: list[Example] = []
        for start in range(0, len(reports), batch_size):
            chunk = reports[start : start + batch_size]
            sets = await label_texts(labeler, [text for _, text in chunk])
            for s in sets:
                if isinstance(s, LabelerError):
                    raise s
            out.extend(Example(id=i, report=text, labels=dict(s.labels)) for (i, text), s in zip(chunk, sets))
        return out

    return asyncio.run(run())


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def split_key(example: Example, seed: int = 0) -> float:
    """Position in [0, 1) from a hash of the normalised report text (stable across runs, machines, Python versions)."""
    digest = hashlib.sha256(f"{seed}:{_normalise(example.report)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(examples: Sequence[Example], val_fraction: float = 0.1, seed: int = 0) -> tuple[list[Example], list[Example]]:
    if not 0 <= val_fraction < 1:
        raise ValueError("val_fraction must be in [0, 1)")
    train, val = [], []
    for ex in examples:
        (val if split_key(ex, seed) < val_fraction else train).append(ex)
    return train, val


def write_jsonl(examples: Iterable[Example], path: str | Path) -> None:
    """Write examples in the generic JSONL layout :func:`load_table` reads (labels as CheXpert CSV codes)."""
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            row = {"id": ex.id, "report": ex.report}
            row.update({name: encode_csv_value(ex.labels.get(name)) for name in OBSERVATIONS})
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def fingerprint(examples: Sequence[Example]) -> str:
    """Content hash of a dataset (ids, text, labels) for the manifest: names the data without copying it."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.id, ex.report, {k: v.value for k, v in ex.labels.items()}]).encode())
    return h.hexdigest()[:16]
