"""audit report: one self-contained HTML file, opened in a real headless Chromium (Debian's package, driven by
Playwright for Python): every plot decodes and shows, the tables are there, and the browser logs no error and
makes no network request."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.audit.diff import label_csv
from connector.audit.sources import EVENT_COLUMNS
from connector.audit.table import read_table, write_table
from connector.cli import app
from connector.cli.convert import convert_files

from .fixtures import PHRASES_A, PHRASES_B, PhraseLabeler, hl7_file, spread_messages

REPO = Path(__file__).resolve().parents[2]
FIGURE = REPO / "docs" / "figures" / "audit_report.png"
N = 42  # six weeks of one report a day


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")
    return path


def _export(folder: Path, out: Path) -> None:
    result = CliRunner().invoke(app, ["audit", "export", "--folder", str(folder), "--out", str(out)],
                                env={"RADLABEL_AUDIT__SALT": "s"})
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A live topic's six weeks: model 2025.01, then 2025.02, then the rules fallback during an outage; a candidate
    model over the same reports; dead letters and skips in the events table."""
    root = tmp_path_factory.mktemp("report")
    values = spread_messages(N)
    parts = [(values[:20], PhraseLabeler(PHRASES_A, "llm", "2025.01", "smollm2-135m")),
             (values[20:36], PhraseLabeler(PHRASES_A, "llm", "2025.02", "smollm2-135m")),
             (values[36:], PhraseLabeler(PHRASES_A, "rules", "1.1.0+improved", fallback=True))]
    for k, (chunk, labeler) in enumerate(parts):
        asyncio.run(convert_files([hl7_file(chunk, root / f"live{k}.hl7")], root / "live", labeler))
    asyncio.run(convert_files([hl7_file(values, root / "all.hl7")], root / "candidate",
                              PhraseLabeler(PHRASES_B, "llm", "2025.03-rc", "smollm2-135m")))
    _export(root / "live", root / "live.parquet")
    _export(root / "candidate", root / "candidate.parquet")
    day_ms, start_ms = 86_400_000, 1_736_121_600_000  # 2025-01-06
    events = [{"kind": "dead-letter", "reason": reason, "source_topic": "hl7.oru.radiology", "source_partition": 0,
               "source_offset": i, "source_timestamp": start_ms + i * 3 * day_ms}
              for i, reason in enumerate(["not-hl7", "truncated", "not-hl7", "label-invalid", "no-report-text"])]
    events += [{"kind": "skipped", "reason": reason, "source_topic": "hl7.oru.radiology", "source_partition": 1,
                "source_offset": i, "source_timestamp": start_ms + i * day_ms}
               for i, reason in enumerate(["excluded:mr", "excluded:ct", "excluded:mr", "non-diagnostic:pending"])]
    write_table(events, EVENT_COLUMNS, root / "events.csv", ("source_partition", "source_offset", "source_timestamp"))
    # A truth file: the live labels with three reports' Cardiomegaly flipped (so neither side scores 1.0).
    label_csv(read_table(root / "live.parquet"), root / "truth.csv", "accession")
    lines = (root / "truth.csv").read_text().splitlines()
    for k in (1, 2, 3):
        cells = lines[k].split(",")
        cells[3] = "0" if cells[3] == "1" else "1"
        lines[k] = ",".join(cells)
    (root / "truth.csv").write_text("\n".join(lines) + "\n")
    out = root / "audit.html"
    result = CliRunner().invoke(app, [
        "audit", "report", "--labels", str(root / "live.parquet"), "--events", str(root / "events.csv"),
        "--compare", str(root / "live.parquet"), "--compare", str(root / "candidate.parquet"),
        "--truth", str(root / "truth.csv"),
        "--title", "Chest X-ray labels: live model vs candidate", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_report_is_one_self_contained_file(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page), "a resource would be fetched"
    assert "<script" not in page and "url(" not in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 4
    assert "default-src 'none'" in page  # the browser itself refuses any fetch
    assert "MRN9000" not in page  # no patient identifier; evidence (report text) is expected


def test_report_renders_plots_and_tables_in_chromium(report: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate("""Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete,
                w: i.naturalWidth, h: i.naturalHeight, shown: i.getBoundingClientRect().width}))""")
            headings = page.locator("h2").all_inner_texts()
            captions = page.locator("caption").all_inner_texts()
            changed = page.locator("table", has=page.locator("caption", has_text="Changed labels"))
            changed_rows = changed.locator("tbody tr").count()
            evidence = changed.locator("td.evidence").all_inner_texts()
            cards = page.locator(".card b").all_inner_texts()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            if os.environ.get("RADLABEL_UPDATE_GOLDEN") == "1":
                page.screenshot(path=str(FIGURE), clip={"x": 0, "y": 0, "width": 1280, "height": 1800})
        finally:
            browser.close()
    assert errors == [] and requests == []
    assert len(images) == 4
    for image in images:
        assert image["ok"] and image["w"] > 300 and image["h"] > 150 and image["shown"] > 300, image
    assert headings[:5] == ["Label prevalence over time", "Fallback and dead-letter rates",
                            "Skipped reports (scope, non-diagnostic text)", "Labelers and model versions in use",
                            "live vs candidate"]
    for caption in ("All periods: share of report versions per class", "Dead letters by reason",
                    "Skipped by reason", "Model versions", "Agreement per observation",
                    "Against the truth file (CheXbert protocol, radlabel evaluate)", "Paired tests"):
        assert caption in captions
    assert cards[0] == str(N) and cards[3] == "6"  # report versions; labeled by the fallback
    # Changed labels by hand (tests/audit/test_diff.py): sentence 3 (pneumonia), 6 (edema), 9 (fracture / lung
    # opacity) appear in three reports each of every ten; 42 reports hold 13 + 12 + 12 + 12 such changes.
    assert changed_rows == 49
    assert any("pneumonia" in e.lower() for e in evidence)
    assert (tmp_path / "report.png").stat().st_size > 50_000
