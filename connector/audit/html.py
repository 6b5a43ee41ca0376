"""`radlabel audit report`: one self-contained HTML page for a governance meeting.

Everything is inside the file: CSS in a <style> element, plots as base64 PNG data URIs, no script, no font or
image fetched at view time (a strict Content-Security-Policy meta tag forbids any network load, so a mistake
would show as a console error in the browser test, not as a silent fetch). Text from the table (evidence is
report text) is HTML-escaped.

Sections: label prevalence per observation over time; fallback and dead-letter rates with reasons; skipped
reports by reason (scope and non-diagnostic text); labeler/model versions over time; and, given two exports to
compare, the transition heatmaps, agreement/kappa and the changed-report table with both sides' evidence.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from connector.audit import figures
from connector.audit.diff import Diff
from connector.audit.rows import CLASSES
from mappings.vocabulary import OBSERVATIONS

# Period code and how its start is shown (a week is named by its Monday).
PERIODS = {"day": ("D", "%Y-%m-%d"), "week": ("W-SUN", "%Y-%m-%d"), "month": ("M", "%Y-%m")}
MAX_CHANGED_ROWS = 500  # the page stays readable; changed.csv of `audit diff` has all of them

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;
 padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:2px solid #ddd;
 padding-bottom:.2rem}
.meta{color:#555;font-size:.9rem}.note{color:#555;font-size:.85rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.85rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;
 text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5rem 0}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;
 min-width:9rem}.card b{display:block;font-size:1.4rem}
td.evidence{max-width:28rem;font-size:.8rem;color:#333}
"""


@dataclass(frozen=True)
class ReportInputs:
    labels: pd.DataFrame  # an audit export
    events: pd.DataFrame | None = None  # the events table (dead letters, skips)
    diff: Diff | None = None
    compare: tuple[pd.DataFrame, pd.DataFrame] | None = None  # the two exports of the diff (for evidence)
    title: str = "radlabel audit report"
    sources: Sequence[str] = ()
    period: str = "week"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(frame: pd.DataFrame, caption: str = "", css: dict[str, str] | None = None, num: Sequence[str] = ()) -> str:
    css = css or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            klass = css.get(column) or ("num" if column in num else "")
            attr = f' class="{klass}"' if klass else ""
            cells.append(f"<td{attr}>{html.escape(_text(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _when(frame: pd.DataFrame) -> pd.Series:
    """Per row: the report's result time, else the input record's Kafka timestamp (UTC)."""
    result = pd.to_datetime(frame["result_time"].replace("", None), utc=True, errors="coerce", format="ISO8601")
    if "source_timestamp" in frame.columns:
        kafka = pd.to_datetime(frame["source_timestamp"].astype("Float64"), unit="ms", utc=True, errors="coerce")
        result = result.fillna(kafka)
    return result


def _periods(when: pd.Series, period: str) -> pd.Series:
    freq, shown = PERIODS[period]
    start = when.dt.tz_convert(None).dt.to_period(freq).dt.start_time.dt.strftime(shown)
    return start.where(when.notna(), "unknown")


def _versions(labels: pd.DataFrame, period: str) -> pd.DataFrame:
    """One row per report version (bundle), with its period."""
    first = labels.drop_duplicates("bundle_id").copy()
    first["period"] = _periods(_when(first), period)
    return first


def _prevalence_section(labels: pd.DataFrame, versions: pd.DataFrame) -> str:
    periods = sorted(versions["period"].unique())
    period_of = versions.set_index("bundle_id")["period"]
    frame = labels.assign(period=labels["bundle_id"].map(period_of))
    shares: dict[str, pd.DataFrame] = {}
    overall = []
    for name in OBSERVATIONS:
        part = frame[frame["observation"] == name]
        counts = pd.crosstab(part["period"], part["class"]).reindex(index=periods, columns=list(CLASSES),
                                                                    fill_value=0)
        totals = counts.sum(axis=1).replace(0, np.nan)
        shares[name] = pd.DataFrame({"positive": counts["positive"] / totals,
                                     "uncertain": counts["uncertain"] / totals}).fillna(0)
        n = len(part)
        overall.append([name, *(f"{100 * (part['class'] == c).sum() / n:.1f}%" if n else "n/a" for c in
                                reversed(CLASSES))])
    table = pd.DataFrame(overall, columns=["observation", "positive", "uncertain", "negative", "blank"])
    return ("<h2 id='prevalence'>Label prevalence over time</h2>"
            "<p class='note'>Share of report versions per period labeled positive or uncertain, per observation. "
            "Time is the report's result time (OBR-22), else the input record's Kafka timestamp.</p>"
            + _img(figures.prevalence(shares, OBSERVATIONS), "label prevalence per observation over time")
            + _table(table, "All periods: share of report versions per class"))


def _rates_section(versions: pd.DataFrame, events: pd.DataFrame | None, period: str) -> str:
    dead = events[events["kind"] == "dead-letter"] if events is not None and len(events) else None
    skipped = events[events["kind"] == "skipped"] if events is not None and len(events) else None
    reports = versions.groupby("period").size()
    fallback = versions.groupby("period")["fallback"].sum()
    frame = pd.DataFrame({"reports": reports, "fallback": fallback})
    if dead is not None and len(dead):
        when = pd.to_datetime(dead["source_timestamp"].astype("Float64"), unit="ms", utc=True, errors="coerce")
        frame = frame.join(dead.assign(period=_periods(when, period)).groupby("period").size().rename("dead_letters"),
                           how="outer")
    else:
        frame["dead_letters"] = 0
    frame = frame.fillna(0).sort_index()
    frame["fallback_pct"] = 100 * frame["fallback"] / frame["reports"].replace(0, np.nan)
    # Rate per input record: a dead letter is one record; published report versions approximate the rest.
    frame["dead_letter_pct"] = 100 * frame["dead_letters"] / (frame["reports"] + frame["dead_letters"]).replace(0,
                                                                                                                np.nan)
    shown = frame.reset_index().rename(columns={"index": "period"})
    shown = shown[["period", "reports", "fallback", "fallback_pct", "dead_letters", "dead_letter_pct"]]
    for column in ("reports", "fallback", "dead_letters"):
        shown[column] = shown[column].astype(int)
    parts = ["<h2 id='rates'>Fallback and dead-letter rates</h2>",
             "<p class='note'>Fallback: the rule labeler stood in for an unavailable model "
             "(<code>labeler.fallback_to_rules</code>). Dead letter: an input record that published nothing "
             "(docs/STREAMING.md reason codes); its period is its Kafka timestamp.</p>",
             _img(figures.rates(frame.drop(index="unknown", errors="ignore")),
                  "fallback and dead-letter rates per period"),
             _table(shown, "Per period", num=["reports", "fallback", "fallback_pct", "dead_letters",
                                               "dead_letter_pct"])]
    if dead is not None and len(dead):
        reasons = dead.groupby("reason").size().sort_values(ascending=False).rename("records").reset_index()
        parts.append(_table(reasons, "Dead letters by reason", num=["records"]))
    elif events is None:
        parts.append("<p class='note'>No events table given (<code>audit export --events-out</code>): dead letters "
                     "not shown.</p>")
    parts.append("<h2 id='skipped'>Skipped reports (scope, non-diagnostic text)</h2>")
    if skipped is not None and len(skipped):
        reasons = skipped.groupby("reason").size().sort_values(ascending=False).rename("reports").reset_index()
        parts.append("<p class='note'>Reports the labelers are not valid for publish nothing "
                     "(docs/HL7_FHIR.md \"What gets labeled\").</p>")
        parts.append(_table(reasons, "Skipped by reason", num=["reports"]))
    else:
        parts.append("<p class='note'>No skipped reports in the events table. Only a replay or convert records "
                     "skips per report; a live connector counts them in <code>radlabel_skipped_total</code>.</p>")
    return "".join(parts)


def _versions_section(versions: pd.DataFrame) -> str:
    who = versions["labeler"] + "@" + versions["model_version"] + versions["model"].map(
        lambda m: f" ({m})" if m else "") + versions["fallback"].map(lambda f: " [fallback]" if f else "")
    counts = pd.crosstab(versions["period"], who).sort_index()
    first_last = versions.assign(who=who).groupby("who")["period"].agg(["min", "max", "count"]).reset_index()
    first_last.columns = ["labeler / model version", "first period", "last period", "report versions"]
    return ("<h2 id='models'>Labelers and model versions in use</h2>"
            + _img(figures.stacked_counts(counts, "report versions"), "report versions per labeler and model version")
            + _table(first_last, "Model versions", num=["report versions"]))


def _diff_section(result: Diff, compare: tuple[pd.DataFrame, pd.DataFrame] | None) -> str:
    a, b = result.name_a, result.name_b
    stats = pd.DataFrame([[d.observation, d.n, d.changed, d.agreement, d.kappa] for d in result.observations],
                         columns=["observation", "report versions", "changed", "agreement", "Cohen's kappa"])
    parts = [f"<h2 id='diff'>{html.escape(a)} vs {html.escape(b)}</h2>",
             "<div class='cards'>"
             f"<div class='card'><b>{result.common_versions}</b>report versions compared</div>"
             f"<div class='card'><b>{result.changed_reports}</b>with a changed label</div>"
             f"<div class='card'><b>{result.only_a} / {result.only_b}</b>only in {html.escape(a)} / "
             f"{html.escape(b)}</div></div>",
             "<p class='note'>Transitions per observation: rows are " + html.escape(a) + "'s class, columns "
             + html.escape(b) + "'s; the diagonal is agreement, coloured cells changed.</p>",
             _img(figures.transitions({d.observation: d.transitions for d in result.observations}, CLASSES, a, b),
                  "transition heatmaps per observation"),
             _table(stats, "Agreement per observation", num=["report versions", "changed", "agreement",
                                                             "Cohen's kappa"])]
    if result.evaluation is not None:
        rows = [[r.name, r.mean_weighted_f1, f"{r.ci[0]:.3f}-{r.ci[1]:.3f}"] for r in result.evaluation.labelers]
        parts.append(_table(pd.DataFrame(rows, columns=["labeler", "mean weighted F1", "95% CI"]),
                            "Against the truth file (CheXbert protocol, radlabel evaluate)"))
        comps = [[c.a, c.b, c.mean_difference, c.ttest_p, c.wilcoxon_p, c.bootstrap_p]
                 for c in result.evaluation.comparisons]
        parts.append(_table(pd.DataFrame(comps, columns=["A", "B", "A - B", "paired t p", "Wilcoxon p",
                                                         "bootstrap p"]), "Paired tests"))
    changed = result.changed.head(MAX_CHANGED_ROWS).copy()
    if compare is not None:
        for side, frame in ((a, compare[0]), (b, compare[1])):
            evidence = frame.set_index(["bundle_id", "observation"])["evidence"]
            keys = list(zip(changed["bundle_id"], changed["observation"], strict=True))
            changed[f"evidence ({side})"] = [evidence.get(k, "") for k in keys]
    changed = changed.drop(columns=["bundle_id"])
    changed["report_id"] = changed["report_id"].str.slice(0, 8)
    more = len(result.changed) - len(changed)
    parts.append(_table(changed, "Changed labels" + (f" (first {MAX_CHANGED_ROWS}; {more} more in changed.csv)"
                                                    if more > 0 else ""),
                        css={c: "evidence" for c in changed.columns if c.startswith("evidence")}))
    return "".join(parts)


def render(inputs: ReportInputs) -> str:
    labels = inputs.labels
    versions = _versions(labels, inputs.period)
    when = _when(versions).dropna()
    span = f"{when.min():%Y-%m-%d} to {when.max():%Y-%m-%d}" if len(when) else "unknown"
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sources = ", ".join(html.escape(s) for s in inputs.sources) or "n/a"
    nav = ("<p class='meta'><a href='#prevalence'>Prevalence</a> · <a href='#rates'>Fallback and dead letters</a> · "
           "<a href='#skipped'>Skipped</a> · <a href='#models'>Model versions</a>"
           + (" · <a href='#diff'>Comparison</a>" if inputs.diff is not None else "") + "</p>")
    body = [
        f"<h1>{html.escape(inputs.title)}</h1>",
        f"<p class='meta'>Generated {generated} from {sources}. Period: {html.escape(inputs.period)}.</p>",
        "<div class='cards'>"
        f"<div class='card'><b>{len(versions)}</b>report versions</div>"
        f"<div class='card'><b>{versions['report_id'].nunique()}</b>reports</div>"
        f"<div class='card'><b>{html.escape(span)}</b>result times</div>"
        f"<div class='card'><b>{int(versions['fallback'].sum())}</b>labeled by the fallback</div></div>",
        nav,
        _prevalence_section(labels, versions),
        _rates_section(versions, inputs.events, inputs.period),
        _versions_section(versions),
    ]
    if inputs.diff is not None:
        body.append(_diff_section(inputs.diff, inputs.compare))
    body.append("<p class='note'>Machine labels, not verified by a clinician. This file holds report text "
                "(evidence): handle it as the source data.</p>")
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(inputs.title)}</title><style>{_CSS}</style></head><body>"
            + "".join(body) + "</body></html>\n")
