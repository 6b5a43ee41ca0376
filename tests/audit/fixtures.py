"""A small, fixed audit fixture: synthetic ORU messages (connector.stream.synthetic, invented patients) labeled by
a phrase table with evidence spans, so the expected tables do not move when the rule labeler is tuned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from mappings.labels import Labeler, LabelerInfo, LabelSet, Span
from mappings.vocabulary import Certainty

from connector.stream.synthetic import oru_message

P, N, U = Certainty.POSITIVE, Certainty.NEGATIVE, Certainty.UNCERTAIN

# phrase in the synthetic report text -> (observation, class)
PHRASES_A: dict[str, tuple[str, Certainty]] = {
    "consistent with cardiomegaly": ("Cardiomegaly", P),
    "No pleural effusion": ("Pleural Effusion", N),
    "Small left pleural effusion": ("Pleural Effusion", P),
    "Possible right lower lobe pneumonia": ("Pneumonia", U),
    "Lungs are clear": ("No Finding", P),
    "Endotracheal tube": ("Support Devices", P),
    "Mild pulmonary edema": ("Edema", P),
    "Bibasilar atelectasis": ("Atelectasis", P),
    "No focal consolidation": ("Consolidation", N),
    "Healed fracture": ("Fracture", P),
}
# A "candidate model": the same table with three deliberate disagreements.
PHRASES_B: dict[str, tuple[str, Certainty]] = {
    **PHRASES_A,
    "Possible right lower lobe pneumonia": ("Pneumonia", P),  # uncertain -> positive
    "Mild pulmonary edema": ("Edema", U),  # positive -> uncertain
    "Healed fracture": ("Lung Opacity", P),  # Fracture positive -> blank, Lung Opacity blank -> positive
}


class PhraseLabeler(Labeler):
    def __init__(self, phrases: dict[str, tuple[str, Certainty]], name: str = "table", version: str = "1.0.0",
                 model: str | None = None, fallback: bool = False) -> None:
        self.phrases = phrases
        self.info = LabelerInfo(name=name, version=version, model=model)
        self.fallback = fallback  # label sets flagged as a fallback's, as the connector's rules stand-in is
        self.calls = 0

    async def label_batch(self, reports: Sequence[str]) -> list[LabelSet]:
        self.calls += 1
        out = []
        for text in reports:
            labels: dict = {}
            evidence: dict = {}
            for phrase, (name, certainty) in self.phrases.items():
                at = text.find(phrase)
                if at >= 0:
                    labels[name] = certainty
                    evidence.setdefault(name, []).append(Span(start=at, end=at + len(phrase)))
            out.append(LabelSet(labels=labels, evidence=evidence, labeler=self.info, fallback=self.fallback))
        return out


def messages(n: int = 6) -> list[bytes]:
    """n reports plus a preliminary and a corrected version of report 0 (three versions, one accession)."""
    values = [oru_message(i, padding_lines=1) for i in range(n)]
    values += [oru_message(0, padding_lines=1, status="P", control_id="CTLPRELIM0"),
               oru_message(0, padding_lines=1, status="C", control_id="CTLCORR0")]
    return values


def hl7_file(values: Sequence[bytes], path: Path) -> Path:
    path.write_bytes(b"".join(b"\x0b" + v.strip(b"\x0b\x1c\r") + b"\r\x1c\r" for v in values))
    return path


def spread_messages(n: int, start: date = date(2025, 1, 6), every_days: int = 1) -> list[bytes]:
    """n reports, report i resulted ``i * every_days`` days after ``start`` (for plots over time)."""
    out = []
    for i in range(n):
        day = (start + timedelta(days=i * every_days)).strftime("%Y%m%d").encode()
        out.append(oru_message(i, padding_lines=1).replace(b"20250101", day))
    return out
