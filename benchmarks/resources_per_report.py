"""Resources written per labeled report on the shared HL7 data (issue 17): every message of ../shared/data/hl7v2
(the washu-tag scout logs as MLLP files, and the Microsoft FHIR-Converter samples) through `radlabel convert`
(rule labeler), then the bundles' entries counted by resource type and kind (live label, entered-in-error
placeholder). Run it on two trees to compare:

    PYTHONPATH=. python benchmarks/resources_per_report.py [--profile standalone|enrich] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.scope_accuracy import scout_to_mllp


def count(out: Path) -> dict:
    by_type: Counter[str] = Counter()
    observations: Counter[str] = Counter()
    bundles = 0
    for path in sorted(out.glob("*.json")):
        bundle = json.loads(path.read_bytes())
        bundles += 1
        for entry in bundle["entry"]:
            resource = entry["resource"]
            by_type[resource["resourceType"]] += 1
            if resource["resourceType"] == "Observation":
                observations["entered-in-error" if resource["status"] == "entered-in-error" else "label"] += 1
    entries = sum(by_type.values())
    return {
        "bundles": bundles,
        "entries": entries,
        "per_report": round(entries / bundles, 2) if bundles else 0,
        "by_type": dict(sorted(by_type.items())),
        "observations": dict(sorted(observations.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("RADLABEL_SHARED", "../shared")))
    parser.add_argument("--profile", default=None, help="passed to radlabel convert (omit on trees without it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scout = Path(tmp) / "scout"
        scout_to_mllp(args.shared, scout)
        files = sorted(scout.glob("*.hl7")) + sorted(
            (args.shared / "data" / "hl7v2" / "microsoft-fhir-converter").glob("*.hl7"))
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "connector.cli", "convert", *map(str, files), "--out", str(out)]
        if args.profile:
            command += ["--profile", args.profile]
        summary = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        result = count(out)
    result["messages_converted"] = summary["converted"]
    result["skipped"] = summary["skipped"]
    result["rejected"] = summary["rejected"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
