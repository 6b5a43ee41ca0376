"""Run a whole evaluation (truth vs several labelers) and write metrics.json, table.md, table.csv and figures."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from connector.evaluate import plots
from connector.evaluate.io import align, read_labels
from connector.evaluate.metrics import (
    Mode,
    ObservationScores,
    indicators,
    mean_weighted_f1,
    score_labeler,
    weighted_f1_from_counts,
)
from connector.evaluate.stats import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Comparison,
    bootstrap_means,
    compare,
    multiplicities,
    percentile_ci,
)
from mappings.vocabulary import OBSERVATIONS


@dataclass
class LabelerResult:
    name: str
    scores: dict[str, ObservationScores]
    mean_weighted_f1: float
    ci: tuple[float, float]
    mean_weighted_f1_pos_neg: float
    ci_pos_neg: tuple[float, float]
    # Per observation: 95% bootstrap CI of the weighted F1 (and of the pos+neg-only one), from the same resamples
    # as the mean's CI. Rare classes have wide intervals; that width is the point of reporting them.
    observation_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    observation_ci_pos_neg: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class Evaluation:
    truth_path: str
    mode: Mode
    n_reports: int
    resamples: int
    seed: int
    labelers: list[LabelerResult] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    comparisons_pos_neg: list[Comparison] = field(default_factory=list)

    def weighted(self, pos_neg: bool = False) -> dict[str, list[float]]:
        return {
            r.name: [(r.scores[o].weighted_f1_pos_neg if pos_neg else r.scores[o].weighted_f1) for o in OBSERVATIONS]
            for r in self.labelers
        }


def evaluate(
    truth_path: str | Path,
    preds: dict[str, str | Path] | list[tuple[str, str | Path]],
    mode: Mode = "weighted",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Evaluation:
    """Score every prediction file against the truth. Raises LabelFileError for unusable files."""
    pairs = list(preds.items()) if isinstance(preds, dict) else list(preds)
    if not pairs:
        raise ValueError("give at least one prediction file")
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"labeler names must be unique: {names}")
    truth_df = read_labels(truth_path)
    truth = truth_df.to_numpy()
    multiplicity = multiplicities(len(truth_df), resamples, seed)
    result = Evaluation(str(truth_path), mode, len(truth_df), resamples, seed)
    boots: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, path in pairs:
        pred = align(truth_df, read_labels(path), name).to_numpy()
        scores = score_labeler(truth, pred, mode)
        ind = indicators(truth, pred, mode)
        boot = bootstrap_means(multiplicity, ind, mode)
        boot_pn = bootstrap_means(multiplicity, ind, mode, pos_neg_only=True)
        boots[name] = (boot, boot_pn)
        per_obs = weighted_f1_from_counts(multiplicity, ind, mode)
        per_obs_pn = weighted_f1_from_counts(multiplicity, ind, mode, pos_neg_only=True)
        result.labelers.append(
            LabelerResult(
                name,
                scores,
                mean_weighted_f1(scores),
                percentile_ci(boot),
                mean_weighted_f1(scores, pos_neg_only=True),
                percentile_ci(boot_pn),
                {o: percentile_ci(per_obs[:, j]) for j, o in enumerate(OBSERVATIONS)},
                {o: percentile_ci(per_obs_pn[:, j]) for j, o in enumerate(OBSERVATIONS)},
            )
        )
    by_name = {r.name: r for r in result.labelers}
    for a, b in combinations(names, 2):
        for pos_neg, target in ((False, result.comparisons), (True, result.comparisons_pos_neg)):
            fa = np.array([_w(by_name[a].scores[o], pos_neg) for o in OBSERVATIONS])
            fb = np.array([_w(by_name[b].scores[o], pos_neg) for o in OBSERVATIONS])
            target.append(compare(a, fa, boots[a][int(pos_neg)], b, fb, boots[b][int(pos_neg)]))
    return result


def _w(s: ObservationScores, pos_neg: bool) -> float:
    return s.weighted_f1_pos_neg if pos_neg else s.weighted_f1


# -- writers -----------------------------------------------------------------------------------------------------
def _num(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 6)


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _fmt_p(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def to_json(ev: Evaluation) -> dict:
    return {
        "truth": ev.truth_path,
        "mode": ev.mode,
        "n_reports": ev.n_reports,
        "bootstrap": {"resamples": ev.resamples, "seed": ev.seed, "ci": "ranks 2.5% and 97.5% of sorted means"},
        "labelers": {
            r.name: {
                "mean_weighted_f1": _num(r.mean_weighted_f1),
                "mean_weighted_f1_ci95": [_num(r.ci[0]), _num(r.ci[1])],
                "mean_weighted_f1_pos_neg": _num(r.mean_weighted_f1_pos_neg),
                "mean_weighted_f1_pos_neg_ci95": [_num(r.ci_pos_neg[0]), _num(r.ci_pos_neg[1])],
                "observations": {
                    o: {
                        **{k: (_num(v) if isinstance(v, float) else v) for k, v in r.scores[o].as_dict().items()},
                        "weighted_f1_ci95": [_num(x) for x in r.observation_ci.get(o, (math.nan, math.nan))],
                        "weighted_f1_pos_neg_ci95": [
                            _num(x) for x in r.observation_ci_pos_neg.get(o, (math.nan, math.nan))],
                    }
                    for o in OBSERVATIONS
                },
            }
            for r in ev.labelers
        },
        "comparisons": [
            {k: (_num(v) if isinstance(v, float) else v) for k, v in c.as_dict().items()} for c in ev.comparisons
        ],
        "comparisons_pos_neg": [
            {k: (_num(v) if isinstance(v, float) else v) for k, v in c.as_dict().items()}
            for c in ev.comparisons_pos_neg
        ],
    }


def to_markdown(ev: Evaluation) -> str:
    names = [r.name for r in ev.labelers]
    weighted_mode = ev.mode == "weighted"
    lines = [
        f"# Evaluation: {Path(ev.truth_path).name} ({ev.n_reports} reports, mode: {ev.mode})",
        "",
        "CheXbert protocol: per-observation one-vs-rest F1 per class, weighted by the truth's class counts; "
        "No Finding scored on positive only; headline = mean of the 14 weighted F1s. "
        + (
            "Positive-only truth: 1 or -1 counts positive in truth and predictions; only positive F1 is scored."
            if not weighted_mode
            else ""
        ),
        f"95% CI: {ev.resamples} bootstrap resamples of the reports (seed {ev.seed}), "
        "same resamples for every labeler.",
        "",
        "## Mean weighted F1" if weighted_mode else "## Mean positive F1",
        "",
    ]
    if weighted_mode:
        lines += ["| Labeler | Mean weighted F1 | 95% CI | Mean F1 (pos+neg only) | 95% CI |", "|---|---|---|---|---|"]
        for r in ev.labelers:
            lines.append(
                f"| {r.name} | {_fmt(r.mean_weighted_f1)} | {_fmt(r.ci[0])}–{_fmt(r.ci[1])} | "
                f"{_fmt(r.mean_weighted_f1_pos_neg)} | {_fmt(r.ci_pos_neg[0])}–{_fmt(r.ci_pos_neg[1])} |"
            )
    else:
        lines += ["| Labeler | Mean positive F1 | 95% CI |", "|---|---|---|"]
        for r in ev.labelers:
            lines.append(f"| {r.name} | {_fmt(r.mean_weighted_f1)} | {_fmt(r.ci[0])}–{_fmt(r.ci[1])} |")
    tables = [("Weighted F1 per observation" if weighted_mode else "Positive F1 per observation", False)]
    if weighted_mode:
        tables.append(("Weighted F1, positive and negative only (the paper's second table)", True))
    for title, pos_neg in tables:
        lines += ["", f"## {title}", "", "| Observation | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for o in OBSERVATIONS:
            lines.append(f"| {o} | " + " | ".join(_fmt(_w(r.scores[o], pos_neg)) for r in ev.labelers) + " |")
        lines.append(
            "| **Mean** | "
            + " | ".join(
                f"**{_fmt(r.mean_weighted_f1_pos_neg if pos_neg else r.mean_weighted_f1)}**" for r in ev.labelers
            )
            + " |"
        )
    unit = "weighted F1" if weighted_mode else "positive F1"
    for comps, title in ((ev.comparisons, f"Paired comparisons ({unit} over the 14 observations)"),) + (
        ((ev.comparisons_pos_neg, "Paired comparisons (positive+negative only)"),) if weighted_mode else ()
    ):
        if not comps:
            continue
        lines += [
            "",
            f"## {title}",
            "",
            "| A | B | mean A | mean B | A − B | paired t-test p | Wilcoxon p | bootstrap p |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in comps:
            lines.append(
                f"| {c.a} | {c.b} | {_fmt(c.mean_a)} | {_fmt(c.mean_b)} | {_fmt(c.mean_difference)} | "
                f"{_fmt_p(c.ttest_p)} | {_fmt_p(c.wilcoxon_p)} | {_fmt_p(c.bootstrap_p)} |"
            )
    for r in ev.labelers:
        lines += [
            "",
            f"## {r.name}: per-class F1 and Cohen's kappa",
            "",
            "| Observation | F1 pos | F1 neg | F1 unc | weighted F1 | 95% CI | kappa | truth n pos/neg/unc/blank |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for o in OBSERVATIONS:
            s = r.scores[o]
            lo, hi = r.observation_ci.get(o, (math.nan, math.nan))
            lines.append(
                f"| {o} | {_fmt(s.f1_positive)} | {_fmt(s.f1_negative)} | {_fmt(s.f1_uncertain)} | "
                f"{_fmt(s.weighted_f1)} | {_fmt(lo, 3)}–{_fmt(hi, 3)} | {_fmt(s.kappa)} | "
                f"{s.n_positive}/{s.n_negative}/{s.n_uncertain}/{s.n_blank} |"
            )
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "labeler",
    "observation",
    "f1_positive",
    "f1_negative",
    "f1_uncertain",
    "weighted_f1",
    "weighted_f1_pos_neg",
    "kappa",
    "n_positive",
    "n_negative",
    "n_uncertain",
    "n_blank",
    "ci95_low",
    "ci95_high",
    "ci95_pos_neg_low",
    "ci95_pos_neg_high",
)


def write_csv(ev: Evaluation, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for r in ev.labelers:
            for o in OBSERVATIONS:
                d = r.scores[o].as_dict()
                ci = r.observation_ci.get(o, (math.nan, math.nan))
                ci_pn = r.observation_ci_pos_neg.get(o, (math.nan, math.nan))
                writer.writerow([r.name, o, *(_cell(d[c]) for c in CSV_COLUMNS[2:12]), *(_cell(x) for x in (*ci, *ci_pn))])
            writer.writerow(
                [
                    r.name,
                    "Mean",
                    "",
                    "",
                    "",
                    _cell(r.mean_weighted_f1),
                    _cell(r.mean_weighted_f1_pos_neg),
                    "",
                    "",
                    "",
                    "",
                    "",
                    _cell(r.ci[0]),
                    _cell(r.ci[1]),
                    _cell(r.ci_pos_neg[0]),
                    _cell(r.ci_pos_neg[1]),
                ]
            )


def _cell(value: float | int) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6f}"
    return str(value)


def write_outputs(ev: Evaluation, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out / "metrics.json",
        "table_md": out / "table.md",
        "table_csv": out / "table.csv",
        "bars": out / "f1_bars.png",
        "heatmap": out / "f1_diff_heatmap.png",
    }
    paths["metrics"].write_text(json.dumps(to_json(ev), indent=2) + "\n")
    paths["table_md"].write_text(to_markdown(ev))
    write_csv(ev, paths["table_csv"])
    label = "weighted F1" if ev.mode == "weighted" else "positive F1 (positive-only truth)"
    subtitle = f"{Path(ev.truth_path).name}, n={ev.n_reports}"
    plots.f1_bars(ev.weighted(), OBSERVATIONS, paths["bars"], f"Per-observation {label} ({subtitle})", label)
    plots.f1_diff_heatmap(ev.weighted(), OBSERVATIONS, paths["heatmap"], f"Absolute {label} differences ({subtitle})")
    return paths
