"""A fixed amount of HL7-path work, for instruction counting under valgrind (steadier than CPU time on a shared
host). Runs 30 warm-up messages, then N more through one stage or the whole path:

    PYTHONPATH=. valgrind --tool=callgrind --callgrind-out-file=cg.0   python benchmarks/hl7_instructions.py all 0
    PYTHONPATH=. valgrind --tool=callgrind --callgrind-out-file=cg.200 python benchmarks/hl7_instructions.py all 200

Instructions per message = (summary of cg.200 − summary of cg.0) / 200. Stages: all | parse | label | convert.
An optional third argument names the output profile (standalone, the default, or enrich). Results:
benchmarks/hl7_path.md.
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
    messages = distinct_messages(WARM_UP + max(n, 1))
    loop = asyncio.new_event_loop()
    if stage == "all":
        for raw in messages[: WARM_UP + n]:
            reports = parse_reports(raw)
            convert_reports(reports, loop.run_until_complete(label_reports(reports, labeler)), profile=profile)
        return
    reports = [parse_reports(raw) for raw in messages]
    labels = [loop.run_until_complete(label_reports(r, labeler)) for r in reports]
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
