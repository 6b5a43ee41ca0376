"""`radlabel audit diff A B`: two audit exports of the same report versions (e.g. the live model and a candidate
replayed over the same window) -> per observation the 4x4 transition counts (blank, negative, uncertain,
positive), agreement and Cohen's kappa (scikit-learn), and the report versions whose labels changed (ids only).

With a truth file, both exports become CheXpert label CSVs and are scored by `radlabel evaluate`'s own code
(connector.evaluate.report): one implementation of the CheXbert protocol and the paired tests.

Rows are matched on (bundle_id, observation): a Bundle id names one version of one report, the same whichever
labeler labeled it. Versions present in only one export are counted, not compared.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from connector.audit.rows import CLASSES
from mappings.vocabulary import OBSERVATIONS

KEY = ("bundle_id", "observation")
NEEDED = ("bundle_id", "report_id", "accession", "observation", "class", "report_status", "result_time")
ID_COLUMNS = ("accession", "report_id", "bundle_id")
_CSV_CODE = {"positive": "1", "negative": "0", "uncertain": "-1", "blank": ""}
_STATUS_RANK = {"P": 0, "F": 1, "C": 2, "X": 2}


class DiffError(ValueError):
    """Exports that cannot be compared (no common report, a version twice in one export)."""


@dataclass
class ObservationDiff:
    observation: str
    n: int
    agreement: float
    kappa: float
    changed: int
    transitions: np.ndarray  # (4, 4): rows A's class, columns B's class, in CLASSES order


@dataclass
class Diff:
    name_a: str
    name_b: str
    observations: list[ObservationDiff]
    changed: pd.DataFrame  # report_id, bundle_id, observation, <a>, <b>
    common_versions: int
    only_a: int
    only_b: int
    evaluation: object | None = None  # connector.evaluate.report.Evaluation when a truth file was given
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def changed_reports(self) -> int:
        return int(self.changed["bundle_id"].nunique()) if len(self.changed) else 0

    def to_json(self) -> dict:
        return {
            "a": self.name_a,
            "b": self.name_b,
            "common_report_versions": self.common_versions,
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
            "changed_report_versions": self.changed_reports,
            "classes": list(CLASSES),
            "observations": {
                d.observation: {"n": d.n, "agreement": _num(d.agreement), "kappa": _num(d.kappa),
                                "changed": d.changed, "transitions": d.transitions.astype(int).tolist()}
                for d in self.observations
            },
        }


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def _check(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    missing = [c for c in NEEDED if c not in frame.columns]
    if missing:
        raise DiffError(f"{name}: not an audit export (missing column(s): {', '.join(missing)})")
    twice = frame.duplicated(list(KEY))
    if twice.any():
        versions = frame.loc[twice, "bundle_id"].nunique()
        raise DiffError(f"{name}: {versions} report version(s) appear more than once (two labelers in one "
                        "export?); export one labeler's output per file")
    return frame


def diff(a: pd.DataFrame, b: pd.DataFrame, name_a: str = "A", name_b: str = "B") -> Diff:
    a, b = _check(a, name_a), _check(b, name_b)
    versions_a, versions_b = set(a["bundle_id"]), set(b["bundle_id"])
    common = versions_a & versions_b
    if not common:
        raise DiffError(f"{name_a} and {name_b} share no report version (bundle_id): not the same window?")
    cols = [*KEY, "report_id", "class"]
    merged = a.loc[a["bundle_id"].isin(common), cols].merge(
        b.loc[b["bundle_id"].isin(common), [*KEY, "class"]], on=list(KEY), suffixes=("_a", "_b"), how="outer")
    merged[["class_a", "class_b"]] = merged[["class_a", "class_b"]].fillna("blank")
    observations = []
    for name in OBSERVATIONS:
        part = merged[merged["observation"] == name]
        counts = pd.crosstab(pd.Categorical(part["class_a"], categories=CLASSES),
                             pd.Categorical(part["class_b"], categories=CLASSES), dropna=False)
        matrix = counts.reindex(index=list(CLASSES), columns=list(CLASSES), fill_value=0).to_numpy()
        n = int(matrix.sum())
        agree = float(np.trace(matrix) / n) if n else float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one class only on both sides: kappa undefined -> NaN
            kappa = float(cohen_kappa_score(part["class_a"], part["class_b"], labels=list(CLASSES))) if n else float(
                "nan")
        observations.append(ObservationDiff(name, n, agree, kappa, n - int(np.trace(matrix)), matrix))
    changed = merged.loc[merged["class_a"] != merged["class_b"], ["report_id", *KEY, "class_a", "class_b"]]
    order = {name: i for i, name in enumerate(OBSERVATIONS)}
    changed = changed.assign(_o=changed["observation"].map(order)).sort_values(["bundle_id", "_o"]).drop(
        columns="_o").rename(columns={"class_a": name_a, "class_b": name_b}).reset_index(drop=True)
    return Diff(name_a, name_b, observations, changed, len(common), len(versions_a - common),
                len(versions_b - common))


def label_csv(frame: pd.DataFrame, path: Path, id_column: str) -> int:
    """The export as a CheXpert label CSV (``id`` + 14 columns) for `radlabel evaluate`. Several versions of one
    id: the latest counts (status P < F < C, then result time), as a FHIR server would hold it."""
    from connector.evaluate.io import write_labels

    if id_column not in ID_COLUMNS:
        raise DiffError(f"--id-column must be one of {', '.join(ID_COLUMNS)}")
    versions = frame.drop_duplicates("bundle_id")[["bundle_id", id_column, "report_status", "result_time"]].copy()
    versions["_rank"] = versions["report_status"].map(_STATUS_RANK).fillna(-1)
    latest = versions.sort_values(["_rank", "result_time"], kind="stable").drop_duplicates(id_column, keep="last")
    wide = frame[frame["bundle_id"].isin(set(latest["bundle_id"]))].pivot(
        index="bundle_id", columns="observation", values="class")
    wide = wide.reindex(columns=list(OBSERVATIONS)).fillna("blank")
    ids = latest.set_index("bundle_id").loc[wide.index, id_column].astype(str)
    write_labels(path, list(ids), [[_CSV_CODE[c] for c in row] for row in wide.itertuples(index=False)])
    return len(wide)


def evaluate_against(truth: Path, a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str, out: Path,
                     id_column: str, mode: str = "weighted", resamples: int | None = None):  # noqa: ANN201
    """Both exports scored against ``truth`` by `radlabel evaluate` (same code, same outputs under out/evaluation)."""
    from connector.evaluate.report import evaluate, write_outputs
    from connector.evaluate.stats import DEFAULT_RESAMPLES

    out.mkdir(parents=True, exist_ok=True)
    path_a, path_b = out / f"{_safe(name_a)}.labels.csv", out / f"{_safe(name_b)}.labels.csv"
    label_csv(a, path_a, id_column)
    label_csv(b, path_b, id_column)
    result = evaluate(truth, [(name_a, path_a), (name_b, path_b)], mode=mode,  # type: ignore[arg-type]
                      resamples=resamples or DEFAULT_RESAMPLES)
    write_outputs(result, out / "evaluation")
    return result


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "labels"


def write_diff(result: Diff, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "diff.json", "transitions": out / "transitions.csv", "changed": out / "changed.csv"}
    summary = result.to_json()
    if result.evaluation is not None:
        from connector.evaluate.report import to_json

        summary["evaluation"] = to_json(result.evaluation)
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    long = [(d.observation, CLASSES[i], CLASSES[j], int(d.transitions[i, j]))
            for d in result.observations for i in range(4) for j in range(4)]
    pd.DataFrame(long, columns=["observation", f"class_{result.name_a}", f"class_{result.name_b}", "count"]).to_csv(
        paths["transitions"], index=False)
    result.changed.to_csv(paths["changed"], index=False)
    return paths
