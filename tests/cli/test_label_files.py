"""Hostile or messy CSV/JSONL for `radlabel label` and `evaluate`: one clear line naming file and line, or it
just works (BOM, huge fields); formula cells neutralised; atomic output; failed reports re-runnable."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mappings.labels import AnswerInvalid, Labeler, LabelerInfo, LabelSet, LabelerUnavailable
from mappings.vocabulary import OBSERVATIONS

import connector.cli.label as label_module
from connector.cli import app
from connector.cli.errors import ExitCode

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def label_file(source: Path, out: Path, *extra: str):
    return invoke("label", "--input", str(source), "--output", str(out), "--labeler", "rules", *extra)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("latin1.csv", "id,report\nr1,Cardiomegalie d\xe9j\xe0 vue.\n".encode("latin-1"), ":2: not UTF-8"),
        ("array.jsonl", b'{"id": "r1", "report": "x"}\n[1, 2]\n', ":2: a JSON list, not an object"),
        ("broken.jsonl", b'{"id": "r1", "report": "x"}\n{"id": \n', ":2: not JSON"),
        ("nullid.jsonl", b'{"id": null, "report": "x"}\n', ":1: missing or null id"),
        ("numtext.jsonl", b'{"id": "a", "report": 5}\n', ":1: report is a JSON int"),
        ("dup.csv", b"id,report\nr1,a\nr2,b\nr1,c\n", ":4: duplicate id 'r1' (first on line 2)"),
        ("empty-id.csv", b"id,report\n,a\n", ":2: empty id"),
        ("nocols.csv", b"name,text2\nx,y\n", "CSV needs columns id and report"),
    ],
)
def test_bad_input_files_are_one_line_naming_file_and_line(tmp_path, name, content, expected):
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "labels.csv"
    result = label_file(source, out)
    assert result.exit_code == ExitCode.REJECTED
    line = one_line_error(result)
    assert str(source) in line and expected in line
    assert not out.exists()


def test_bom_and_huge_fields_just_work(tmp_path):
    big = "FINDINGS: " + "Heart size is normal. " * 8000 + "\nIMPRESSION: Cardiomegaly."  # ~176 KB, over csv's 128 KB
    source = tmp_path / "bom.csv"
    with source.open("w", encoding="utf-8-sig", newline="") as handle:  # BOM before "id"
        csv.writer(handle).writerows([["id", "report"], ["big", big], ["small", "No pneumothorax."]])
    out = tmp_path / "labels.csv"
    result = label_file(source, out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["big", "small"]
    assert rows[0]["Cardiomegaly"] == "1"


def test_formula_cells_are_neutralised_and_read_back(tmp_path):
    ids = ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "plain"]
    source = tmp_path / "in.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "report"])
        writer.writerows([[i, "IMPRESSION: No pneumothorax."] for i in ids])
    out = tmp_path / "labels.csv"
    assert label_file(source, out).exit_code == 0
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert [r[0] for r in rows[1:]] == ["'" + i for i in ids[:4]] + ["plain"]
    # Label cells are not text: -1 stays -1.
    assert all(cell in ("", "0", "1", "-1") for r in rows[1:] for cell in r[1:])
    # evaluate reads the neutralised ids back as the originals (truth written plainly by a user's script).
    truth = tmp_path / "truth.csv"
    with truth.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *OBSERVATIONS])
        for r in rows[1:]:
            writer.writerow([r[0][1:] if r[0].startswith("'") else r[0], *r[1:]])
    result = invoke("evaluate", "--truth", str(truth), "--pred", f"rules={out}", "--out", str(tmp_path / "ev"),
                    "--bootstrap", "100")
    assert result.exit_code == 0, result.output


class _Flaky(Labeler):
    """Fails the reports whose text says so (AnswerInvalid), or the whole batch (down=True)."""

    info = LabelerInfo(name="flaky", version="1")

    def __init__(self, down: bool = False) -> None:
        self.down = down

    async def label_batch(self, reports: Sequence[str]) -> list[LabelSet]:
        raise NotImplementedError

    async def label_batch_detailed(self, reports: Sequence[str]):
        if self.down:
            raise LabelerUnavailable("down")
        return [AnswerInvalid("no") if "FAIL" in r else LabelSet(labeler=self.info) for r in reports]


def test_failed_reports_go_to_a_rerunnable_file(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("id,report\nok1,fine\nbad1,FAIL here\n=bad2,FAIL too\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    monkeypatch.setattr(label_module, "make_labeler", lambda settings: _Flaky())
    result = label_file(source, out)
    assert result.exit_code == ExitCode.PARTIAL
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    retry = Path(summary["failed_reports"])
    assert retry == tmp_path / "labels.failed.csv"
    from connector.cli.tables import read_reports

    assert [(r.id, r.report) for r in read_reports(retry)] == [("bad1", "FAIL here"), ("=bad2", "FAIL too")]
    assert [r[0] for r in csv.reader(out.open())][1:] == ["ok1"]
    # The retry file is valid input for another run.
    monkeypatch.setattr(label_module, "make_labeler", lambda settings: _Rules())
    result = label_file(retry, tmp_path / "labels2.csv")
    assert result.exit_code == 0 and not (tmp_path / "labels2.failed.csv").exists()


class _Rules(Labeler):
    info = LabelerInfo(name="ok", version="1")

    async def label_batch(self, reports: Sequence[str]) -> list[LabelSet]:
        return [LabelSet(labeler=self.info) for _ in reports]


def test_failed_run_leaves_no_old_file_that_looks_current(tmp_path, monkeypatch):
    source = tmp_path / "in.csv"
    source.write_text("id,report\nr1,fine\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    out.write_text("id,old\nstale,1\n")
    monkeypatch.setattr(label_module, "make_labeler", lambda settings: _Flaky(down=True))
    result = label_file(source, out)
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "removed" in one_line_error(result)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".labels")] == []  # no temporary left over


def test_output_is_replaced_atomically(tmp_path, monkeypatch):
    """A crash while writing leaves the previous complete file, never half a file."""
    source = tmp_path / "in.csv"
    source.write_text("id,report\nr1,fine\nr2,fine\n", encoding="utf-8")
    out = tmp_path / "labels.csv"
    assert label_file(source, out).exit_code == 0
    before = out.read_bytes()

    class Boom(LabelSet):
        def csv_row(self):  # fails half-way through the file
            raise RuntimeError("disk full")

    class Half(Labeler):
        info = LabelerInfo(name="half", version="1")

        async def label_batch(self, reports):
            return [LabelSet(labeler=self.info), Boom(labeler=self.info)]

    monkeypatch.setattr(label_module, "make_labeler", lambda settings: Half())
    result = label_file(source, out)
    assert result.exit_code == ExitCode.INTERNAL
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".labels")] == []


def test_evaluate_refuses_non_utf8_and_empty_ids_and_reads_a_bom(tmp_path):
    header = ",".join(["id", *OBSERVATIONS])
    row = "," * len(OBSERVATIONS)
    truth = tmp_path / "truth.csv"
    truth.write_bytes(("\ufeff" + header + "\nr1" + row + "\nr2" + row + "\n").encode("utf-8"))
    pred = tmp_path / "pred.csv"
    pred.write_bytes((header + "\nr1" + row + "\n" + row + "\n").encode("utf-8"))
    result = invoke("evaluate", "--truth", str(truth), "--pred", f"p={pred}", "--out", str(tmp_path / "o"))
    assert result.exit_code == ExitCode.REJECTED and "empty id on line(s) 3" in one_line_error(result)
    pred.write_bytes((header + "\nr1" + row + "\nr\xe92" + row + "\n").encode("latin-1"))
    result = invoke("evaluate", "--truth", str(truth), "--pred", f"p={pred}", "--out", str(tmp_path / "o"))
    assert result.exit_code == ExitCode.REJECTED and "not UTF-8" in one_line_error(result)
