from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from mappings.labels import Labeler, LabelerInfo, LabelSet
from mappings.vocabulary import Certainty

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
GOLDEN = HERE / "golden"
REPO = HERE.parent.parent
SAMPLES = REPO / "connector" / "samples"

P, N, U = Certainty.POSITIVE, Certainty.NEGATIVE, Certainty.UNCERTAIN


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def shared_root() -> Path | None:
    root = Path(os.environ.get("RADLABEL_SHARED", REPO.parent / "shared"))
    return root if root.is_dir() else None


class TableLabeler(Labeler):
    """Labels chosen per report text by the test (the FHIR mapping is a pure function of report + labels,
    so its tests fix the labels instead of depending on a labeler's judgement)."""

    info = LabelerInfo(name="table", version="9.9.9")

    def __init__(self, table: dict[str, dict[str, Certainty]] | None = None, default: dict | None = None) -> None:
        self.table = table or {}
        self.default = default or {}
        self.seen: list[str] = []

    async def label_batch(self, reports: Sequence[str]) -> list[LabelSet]:
        self.seen.extend(reports)
        out = []
        for text in reports:
            labels = next((v for k, v in self.table.items() if k in text), self.default)
            out.append(LabelSet(labels=labels, labeler=self.info))
        return out


@pytest.fixture
def shared() -> Path:
    root = shared_root()
    if root is None:
        pytest.skip("../shared (or RADLABEL_SHARED) not present")
    return root
