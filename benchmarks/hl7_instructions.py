"""A fixed amount of HL7-path work, for instruction counting under valgrind (steadier than CPU time on a shared
host). Runs 30 warm-up messages, then N more through one stage or the whole path:

    PYTHONPATH=. valgrind --tool=callgrind --callgrind-out-file=cg.0   python benchmarks/hl7_instructions.py all 0
    PYTHONPATH=. valgrind --tool=callgrind --callgrind-out-file=cg.200 python benchmarks/hl7_instructions.py all 200

Instructions per message = (summary of cg.200 − summary of cg.0) / 200. Stages: all | parse | label | convert.
For a single stage the set-up (parsing and labeling 230 messages) is the same whatever N, so the difference is that
stage alone. An optional third argument names the output profile (standalone, the default, or enrich); a fourth
keeps only the first K asserted findings of each report (`convert` stage: the benchmark message asserts 9, the
shared HL7 data averages 4.45). Results: benchmarks/hl7_path.md.
"""

from __future__ import annotations

import asyncio
import sys

from benchmarks.hl7_path import distinct_messages
from connector.fhir.identifiers import OutputProfile
from connector.pipeline import convert_reports, label_reports, parse_reports
from connector.rules.labeler import RuleLabeler

WARM_UP = 30


def main() -> None:
    stage, n = sys.argv[1], int(sys.argv[2])
    profile = OutputProfile(kind=sys.argv[3] if len(sys.argv) > 3 else "standalone")  # type: ignore[arg-type]
    labeler = RuleLabeler()
    keep = int(sys.argv[4]) if len(sys.argv) > 4 else None
    messages = distinct_messages(WARM_UP + (max(n, 1) if stage == "all" else 200))
    loop = asyncio.new_event_loop()
    if stage == "all":
        for raw in messages[: WARM_UP + n]:
            reports = parse_reports(raw)
            convert_reports(reports, loop.run_until_complete(label_reports(reports, labeler)), profile=profile)
        return
    reports = [parse_reports(raw) for raw in messages]
    labels = [loop.run_until_complete(label_reports(r, labeler)) for r in reports]
    if keep is not None:
        labels = [[ls.model_copy(update={"labels": dict(list(ls.labels.items())[:keep])}) for ls in outcome]
                  for outcome in labels]
    for i in range(WARM_UP):
        convert_reports(reports[i], labels[i], profile=profile)
    for i in range(WARM_UP, WARM_UP + n):
        if stage == "parse":
            parse_reports(messages[i])
        elif stage == "label":
            loop.run_until_complete(label_reports(reports[i], labeler))
        elif stage == "convert":
            convert_reports(reports[i], labels[i], profile=profile)
        else:
            sys.exit(f"unknown stage {stage!r}: all | parse | label | convert")


if __name__ == "__main__":
    main()
