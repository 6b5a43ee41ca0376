"""Rule labeler throughput on one core: faithful (chexpert) vs improved profile, side by side in one process.

    RADLABEL_SHARED=/work/shared PYTHONPATH=. python benchmarks/rules_speed.py [--rounds 5]

Input: the IU X-ray train+val reports (INDICATION/COMPARISON/FINDINGS/IMPRESSION with headers, the layout
benchmarks/eval_rules.py labels) when ../shared is present, else a built-in set of synthetic reports of similar
length. The process is pinned to one CPU; profiles alternate round by round so machine noise hits both alike.
Reports the median of the rounds. Results: benchmarks/rules.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.rules.labeler import RuleLabeler, label_report  # noqa: E402

SYNTHETIC = [
    "INDICATION: Chest pain.\nFINDINGS: The heart size and mediastinal contours are within normal limits. The lungs "
    "are clear. No pneumothorax or pleural effusion. Mild degenerative changes of the thoracic spine.\n"
    "IMPRESSION: No acute cardiopulmonary abnormality.",
    "INDICATION: Shortness of breath.\nCOMPARISON: Prior study.\nFINDINGS: Stable mild cardiomegaly. There is "
    "pulmonary vascular congestion with small bilateral pleural effusions. Left basilar opacity may represent "
    "atelectasis or pneumonia. Sternotomy wires are intact.\nIMPRESSION: Mild CHF. Left basilar atelectasis versus "
    "pneumonia.",
    "FINDINGS: Right chest port catheter tip in the SVC. Calcified granuloma in the right upper lobe. No focal "
    "consolidation. Heart size normal.\nIMPRESSION: No active disease.",
]


def load_reports() -> tuple[list[str], str]:
    shared = Path(os.environ.get("RADLABEL_SHARED", REPO.parent / "shared"))
    path = shared / "data/iu-xray/reports.csv"
    if path.is_file():
        import pandas as pd

        from training.data import iu_report_text

        frame = pd.read_csv(path, dtype=str)
        frame = frame[frame["split"].isin(["train", "val"])]
        return [iu_report_text(row) for _, row in frame.iterrows()], "IU X-ray train+val"
    return SYNTHETIC * 700, "synthetic (shared data absent)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    reports, source = load_reports()
    chars = sum(map(len, reports)) / len(reports)
    profiles = ("chexpert", "improved")
    for profile in profiles:  # compile and warm up outside the timed rounds
        for text in reports[:50]:
            label_report(text, profile)
    labeler = RuleLabeler()  # the async Labeler path the connector uses, batches of 64

    async def batched() -> None:
        for i in range(0, len(reports), 64):
            await labeler.label_batch(reports[i : i + 64])

    runs = {
        "chexpert": lambda: [label_report(t, "chexpert") for t in reports],
        "improved": lambda: [label_report(t, "improved") for t in reports],
        "improved via RuleLabeler.label_batch (64/batch)": lambda: asyncio.run(batched()),
    }
    # CPU-time rate: what one core delivers when it is ours (the machine is shared, so wall time also counts
    # time other processes held the core); the wall-clock rate is printed beside it.
    rates: dict[str, list[float]] = {name: [] for name in runs}
    walls: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            cpu, wall = time.process_time(), time.perf_counter()
            run()
            rates[name].append(len(reports) / (time.process_time() - cpu))
            walls[name].append(len(reports) / (time.perf_counter() - wall))
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, 1 core pinned")
    print(f"input: {len(reports)} reports ({source}), mean {chars:.0f} characters")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("| profile | median reports/s (CPU time) | min | max | median reports/s (wall) | rounds |")
    print("|---|---|---|---|---|---|")
    for name, r in rates.items():
        print(
            f"| {name} | {statistics.median(r):,.0f} | {min(r):,.0f} | {max(r):,.0f} | "
            f"{statistics.median(walls[name]):,.0f} | {len(r)} |"
        )


if __name__ == "__main__":
    main()
