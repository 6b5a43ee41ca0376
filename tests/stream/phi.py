"""The fixtures' PHI, which must never reach a log line."""

from __future__ import annotations

from collections.abc import Iterable

from connector.stream.synthetic import PATIENTS, SENTENCES


def assert_no_phi(text: str, extra: Iterable[str] = ()) -> None:
    for token in (*(t for patient in PATIENTS for t in patient), *extra):
        assert token not in text, f"{token} leaked into logs"
    for sentence in SENTENCES:
        assert sentence not in text, "report text leaked into logs"
    assert "SYN000" not in text and "CTL0000" not in text, "accession or control id leaked into logs"
