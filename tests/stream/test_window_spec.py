"""Window flags (`replay`, `audit export`) -> what to read; bad ones are one clear error each."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from connector.stream.window import Window, WindowError, WindowSpec, parse_offsets, parse_time, spec


def test_offsets_and_times_parse() -> None:
    assert parse_offsets("0=100-200, 1=0-,2=-50") == {0: (100, 200), 1: (0, None), 2: (None, 50)}
    assert parse_time("2025-01-06T00:00:00Z") == parse_time("2025-01-06T01:00:00+01:00") == 1_736_121_600_000
    assert parse_time("2025-01-06") == 1_736_121_600_000  # no offset: UTC
    assert spec(None, None, None) == WindowSpec()


@pytest.mark.parametrize("flags, message", [
    (dict(offsets="0=5-1"), "ends before it starts"),
    (dict(offsets="zero=1-2"), "PARTITION=START-END"),
    (dict(offsets=" , "), "names no partition"),
    (dict(from_="yesterday"), "not an ISO 8601 time"),
    (dict(from_="2025-02-01", to="2025-01-01"), "--from is after --to"),
    (dict(from_="2025-01-01", offsets="0=1-2"), "not both"),
])
def test_bad_windows_are_refused(flags: dict, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        spec(flags.get("from_"), flags.get("to"), flags.get("offsets"))


def test_window_label_and_size() -> None:
    window = Window("hl7.oru.radiology", {1: (5, 9), 0: (0, 3), 2: (7, 7)})
    assert window.label() == "hl7.oru.radiology:0=0-3,1=5-9,2=7-7"
    assert window.total == 7
    assert window.partitions() == [TopicPartition("hl7.oru.radiology", p) for p in (0, 1, 2)]
