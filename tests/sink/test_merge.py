"""Merging first versions into one transaction (connector.sink.merge): what may share a transaction and what
the merged Bundle holds. The writer's use of it, on the real Medplum engine, is in test_writer.py."""

from __future__ import annotations

import copy

import orjson

from connector.sink.merge import Group, split

from tests.sink.bundles import bundle


def entries_of(body: bytes) -> list[dict]:
    merged = orjson.loads(body)
    assert (merged["resourceType"], merged["type"]) == ("Bundle", "transaction")
    return merged["entry"]


def test_split_then_whole_is_the_same_transaction():
    b = bundle("M1", "F", {"Edema": "?", "Pneumothorax": "+"}, result_time="2025-01-01T08:00:00Z")
    parts = split(b)
    assert parts.mergeable
    assert orjson.loads(parts.whole()) == b
    assert orjson.loads(split({"type": "transaction", "entry": b["entry"]}).whole())["entry"] == b["entry"]


def test_resources_written_alike_are_written_once():
    one, two = (bundle(a, "F", {"Edema": "-"}) for a in ("M1", "M2"))
    group = Group(max_entries=50)
    assert group.add(split(one)) and group.add(split(two))
    entries = entries_of(group.body())
    urls = [e["request"]["url"] for e in entries]
    assert len(urls) == len(set(urls))  # a transaction may not name one resource twice
    assert sum(u.startswith("Device/") for u in urls) == 1  # the labeler Device both reports write
    assert len(entries) == len(one["entry"]) + len(two["entry"]) - 1
    assert group.members == 2


def test_a_resource_written_differently_goes_to_another_transaction():
    one = bundle("M1", "F", {"Edema": "-"})
    two = bundle("M2", "F", {"Edema": "-"})
    # the second report writes the first one's Patient with other demographics
    two["entry"][0] = copy.deepcopy(one["entry"][0])
    two["entry"][0]["resource"]["name"] = [{"family": "Other"}]
    group = Group(max_entries=50)
    assert group.add(split(one))
    before = group.body()
    assert not group.add(split(two))
    assert group.body() == before and group.members == 1  # a refused add changes nothing


def test_conditional_requests_are_never_merged():
    b = bundle("M1", "F", {"Edema": "-"}, profile="enrich")
    assert split(b).mergeable  # conditional references inside resources are resolved per entry by the server
    for change in ({"ifNoneExist": "identifier=x|1"}, {"ifMatch": 'W/"1"'}, {"url": "Patient?identifier=x|1"}):
        c = copy.deepcopy(b)
        c["entry"][0]["request"].update(change)
        assert not split(c).mergeable, change
        assert not Group(max_entries=50).add(split(c))
    d = copy.deepcopy(b)
    d["entry"].append({"request": {"method": "DELETE", "url": "Observation/x"}})
    assert not split(d).mergeable
    assert not split({**b, "type": "batch"}).mergeable


def test_entry_cap_starts_a_new_transaction_but_a_large_report_still_goes_alone():
    one, two = (bundle(a, "F", {"Edema": "-", "Pneumothorax": "+"}) for a in ("M1", "M2"))
    cap = len(one["entry"]) + 1
    group = Group(max_entries=cap)
    assert group.add(split(one))
    assert not group.add(split(two))  # would exceed the cap
    alone = Group(max_entries=2)
    assert alone.add(split(one))  # larger than the cap, but nothing to split it from: sent as it is
    assert len(entries_of(alone.body())) == len(one["entry"])
