"""The human-annotated IU set (training/annotation) is internally consistent: the truth is exactly the agreed cells
plus the adjudicated ones, the lock-box list is the sample's lock-box split, and the sample can be redrawn from the
shared data byte for byte (so the dev/lock-box assignment cannot drift silently)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from connector.evaluate.io import read_labels
from mappings.vocabulary import OBSERVATIONS
from training.annotation import agree, sample

DATA = Path(sample.__file__).parent / "data"


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="") as fh:
        return list(csv.DictReader(fh))


def test_truth_is_the_agreed_cells_plus_the_adjudicated_ones_plus_the_review() -> None:
    a, b, truth = (read_labels(DATA / f"{n}.csv") for n in ("annotator_a", "annotator_b", "adjudicated"))
    assert list(a.index) == list(b.index) == list(truth.index)
    assert sorted(a.index, key=int) == sorted((r["uid"] for r in _rows("sample.csv")), key=int)
    decided = {(r["uid"], r["observation"]): r for r in _rows("adjudication.csv")}
    reviewed = {(r["uid"], r["observation"]): r for r in _rows("review.csv")}
    disagreements = set()
    for uid in a.index:
        for name in OBSERVATIONS:
            x, y, t = a.at[uid, name], b.at[uid, name], truth.at[uid, name]
            if (uid, name) in reviewed:  # the consistency review's change is the final word, logged with its rule
                after = reviewed[(uid, name)]["after"]
                assert (t != t) if after == "" else t == float(after), (uid, name)
                assert reviewed[(uid, name)]["clarification"].strip()
                if x != y and not (x != x and y != y):
                    disagreements.add((uid, name))
                continue
            same = (x == y) or (x != x and y != y)  # NaN == blank on both sides
            if same:
                assert (t == x) or (t != t and x != x), (uid, name)
            else:
                disagreements.add((uid, name))
                final = decided[(uid, name)]["final"]
                assert (t != t) if final == "" else t == float(final), (uid, name)
                assert decided[(uid, name)]["rule"].strip(), "every adjudication names its rule"
    assert disagreements == set(decided)


def test_no_finding_is_never_asserted_beside_a_finding() -> None:
    truth = read_labels(DATA / "adjudicated.csv")
    findings = truth[[o for o in OBSERVATIONS if o not in ("No Finding", "Support Devices")]]
    flagged = truth["No Finding"] == 1
    assert not ((findings.loc[flagged] == 1) | (findings.loc[flagged] == -1)).any().any()
    assert set(truth["No Finding"].dropna().unique()) <= {1.0}


def test_lockbox_list_is_the_samples_lockbox_split() -> None:
    split = {r["uid"]: r["split"] for r in _rows("sample.csv")}
    assert {r["uid"] for r in _rows("lockbox_uids.csv")} == {u for u, s in split.items() if s == "lockbox"}
    assert sum(s == "lockbox" for s in split.values()) >= 200


def test_agreement_table_counts_every_report_of_the_split() -> None:
    table = agree.agreement("dev")
    assert table.iloc[-1]["observation"] == "mean (14)"
    assert len(agree.load("adjudicated", "dev")) + len(agree.load("adjudicated", "lockbox")) == len(_rows("sample.csv"))
    assert 0.0 <= table.iloc[:-1]["kappa A-B"].min() <= 1.0


def test_sample_redraws_identically_from_shared_data(shared_data: Path) -> None:
    rows = sample.draw(shared_data.parent)
    assert rows == _rows("sample.csv")
    gold = {r["uid"] for r in csv.DictReader(open(shared_data / "gold-dev" / "reports.csv", newline=""))}
    assert not gold & {r["uid"] for r in rows}, "gold-dev reports must not be in the annotated set"
    strata = {r["stratum"] for r in rows}
    assert {"random", "mesh:Pleural Other", "text:Pleural Other"} <= strata


def test_training_never_sees_a_lockbox_report(tmp_path: Path) -> None:
    from connector.cli.train import _load_examples

    lock = sorted(r["uid"] for r in _rows("lockbox_uids.csv"))[:2]
    dev = sorted(r["uid"] for r in _rows("sample.csv") if r["split"] == "dev")[:2]
    iu = tmp_path / "reports.csv"
    with open(iu, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["uid", "report_id", "split", "indication", "comparison", "findings", "impression"])
        for uid in lock + dev:
            writer.writerow([uid, f"CXR{uid}", "train", "", "", "Mild cardiomegaly.", "No pneumothorax."])
    examples, provenance = _load_examples([], None, None, [iu], [], None)
    assert sorted(e.id for e in examples) == sorted(f"iu-{u}" for u in dev)
    assert provenance["sources"][0]["lockbox_excluded"] is True


def test_training_table_is_dev_only_with_rare_reports_oversampled(shared_data: Path) -> None:
    from training.annotation.table import RARE, build

    with pytest.raises(ValueError, match="lock-box"):
        build(shared_data.parent, "lockbox")
    once, thrice = build(shared_data.parent, "dev", 1), build(shared_data.parent, "dev", 3)
    dev = {r["uid"] for r in _rows("sample.csv") if r["split"] == "dev"}
    assert {i.removeprefix("human-") for i in once["id"]} == dev and once["report"].str.len().min() > 0
    rare = once[list(RARE)].isin(["1", "-1"]).any(axis=1).sum()
    assert 0 < rare < len(once) and len(thrice) == len(once) + 2 * rare
