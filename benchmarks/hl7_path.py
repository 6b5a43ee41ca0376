"""HL7 bytes -> report -> rule labels -> validated FHIR bundle JSON: messages/s on one core, side by side with plain
hl7apy and python-hl7 parsing of the same ~2 KB ORU^R01, all in one process.

    PYTHONPATH=. python benchmarks/hl7_path.py [--seconds 2] [--rounds 5] [--cpu 0] [--profile standalone|enrich]

Variants run round-robin (one slice of each per round) so that load from other processes on the machine hits all
of them alike; the report gives each variant's best and median round. Results: benchmarks/hl7_path.md.
"""

from __future__ import annotations

import argparse
import gc
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from mappings.labels import LabelSet
from mappings.vocabulary import Certainty

from connector.fhir.bundle import build_bundle, build_bundle_shared, bundle_bytes
from connector.fhir.identifiers import OutputProfile
from connector.fhir.validate import validate_bundle
from connector.pipeline import build_validated_bundle, convert_reports, label_reports, parse_reports
from connector.rules.labeler import RuleLabeler

# A synthetic chest X-ray result shaped like a real RIS feed (PV1/ORC/OBR with the usual fields filled, report
# text in TX OBX), about 2 KB. Invented content.
SEGMENTS = [
    r"MSH|^~\&|BENCHRIS|BENCHHOSP|RADLABEL|BENCHHOSP|20240412093512||ORU^R01^ORU_R01|BENCH000001|P|2.5.1|||AL|NE||UNICODE UTF-8",
    r"PID|1||MRN7001234^^^BENCHHOSP^MR~EPI99887766^^^EPIC^MRN||TESTPATIENT^ROBIN^Q^^^^L||19620314|F||2106-3^White^CDCREC|100 MAIN ST^^SPRINGFIELD^IL^62701^USA^H||^PRN^PH^^^217^5550100|||M|||999-00-1234",
    r"PV1|1|I|4WEST^412^B^BENCHHOSP||||D1234^ATTENDING^PAT^^^DR^MD|||MED||||1|||D1234^ATTENDING^PAT^^^DR^MD|IN||||||||||||||||||||||||20240410120000",
    r"ORC|RE|PL7001^BENCHRIS|ACC7001^BENCHRIS||CM||^^^20240412080000^^R||20240412093512|T123^TECH^TERRY||D5678^ORDERING^ORA^^^DR^MD",
    r"OBR|1|PL7001^BENCHRIS|ACC7001^BENCHRIS|71046^XR CHEST 2 VIEWS^CPT|R|20240412080000|20240412081500|||||||||D5678^ORDERING^ORA^^^DR^MD||ACC7001|||||20240412093000||CR|F||^^^20240412080000^^R|||||R9012&READER&RILEY&&&DR&MD",
    r"OBX|1|TX|18785-6^Radiology reason for study^LN||Shortness of breath, evaluate for pneumonia or effusion. History of CHF.||||||F",
    r"OBX|2|TX|18834-2^Radiology comparison study^LN||Chest radiographs from 2024-03-02 and 2023-12-18.||||||F",
    r"OBX|3|TX|18782-3^Radiology study observation^LN||PA and lateral views of the chest were obtained.~The cardiac silhouette is enlarged, unchanged from prior.~There is mild pulmonary vascular congestion with interstitial edema.~Small bilateral pleural effusions with adjacent basilar opacities, likely atelectasis;~superimposed pneumonia in the right lower lobe cannot be excluded.~No pneumothorax. A right internal jugular central venous catheter terminates~in the lower superior vena cava. Sternotomy wires are intact.~Degenerative changes of the thoracic spine without acute fracture.||||||F",
    r"OBX|4|TX|19005-8^Radiology impression^LN||1. Cardiomegaly with mild interstitial edema and small bilateral effusions.~2. Bibasilar opacities, likely atelectasis; right lower lobe pneumonia not excluded.~3. Right IJ central venous catheter in the SVC. No pneumothorax.||||||F",
    r"OBX|5|TX|SIGN^Signature^L||Electronically signed by Riley Reader, MD on 2024-04-12 09:30.||||||F",
]
MESSAGE = ("\r".join(SEGMENTS) + "\r").encode("utf-8")
MLLP = b"\x0b" + MESSAGE + b"\x1c\r"
DISTINCT = 1000


def distinct_messages(count: int = DISTINCT) -> list[bytes]:
    """The same message with everything that differs between real messages made different in each copy (control
    id, MRNs, name, birth date, accession/placer numbers, times, dates in the text), so that no per-value cache
    (validated patients, ids, ...) can serve a repeat. Same size and structure as MESSAGE."""
    families = ["TESTPATIENT", "EXAMPLE", "SAMPLE", "DEMO", "PLACEHOLDER", "FICTIONAL", "INVENTED"]
    out = []
    for i in range(count):
        text = "\r".join(SEGMENTS) + "\r"
        text = (
            text.replace("BENCH000001", f"BENCH{i:06d}")
            .replace("MRN7001234", f"MRN{7000000 + i * 7:07d}")
            .replace("EPI99887766", f"EPI{99000000 + i * 13:08d}")
            .replace("TESTPATIENT^ROBIN", f"{families[i % len(families)]}^ROBIN{i % 97}")
            .replace("19620314", f"19{40 + i % 60:02d}{1 + i % 12:02d}{1 + i % 28:02d}")
            .replace("ACC7001", f"ACC{7001 + i}")
            .replace("PL7001", f"PL{7001 + i}")
            .replace("202404120", f"2024{1 + i % 12:02d}{1 + i % 28:02d}0")
            .replace("2024-03-02", f"2024-0{1 + i % 9}-{10 + i % 18}")
        )
        out.append(b"\x0b" + text.encode("utf-8") + b"\x1c\r")
    return out


def _labels() -> LabelSet:
    return LabelSet(
        labels={"Cardiomegaly": Certainty.POSITIVE, "Edema": Certainty.POSITIVE, "Pleural Effusion": Certainty.POSITIVE},
        labeler=RuleLabeler().info,
    )


# The output profile the bundle variants write (--profile): standalone (`convert`'s default, and the only one before
# issue 12) or enrich (`run`'s default: no Patient, no DiagnosticReport with the report text).
PROFILE = OutputProfile()


def build_variants(loop: asyncio.AbstractEventLoop) -> dict[str, Callable[[], object]]:
    labeler = RuleLabeler()
    profile = PROFILE
    fixed = _labels()
    text = MESSAGE.decode("utf-8")

    def hl7apy_parse() -> object:
        # hl7apy needs str and CR terminators; tolerant validation, no group detection (its fastest setting).
        return parse_message(text, validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)

    def python_hl7_parse() -> object:
        return hl7.parse(text)

    def radlabel_parse() -> object:
        return parse_reports(MLLP)

    def parse_fhir_full_validation() -> bytes:
        report = parse_reports(MLLP)[0]
        bundle = build_bundle(report, fixed, profile=profile)
        validate_bundle(bundle, full=True)
        return bundle_bytes(bundle)

    def parse_fhir() -> bytes:
        return build_validated_bundle(parse_reports(MLLP)[0], fixed, profile=profile)

    async def _end_to_end() -> list:
        reports = parse_reports(MLLP)
        return convert_reports(reports, await label_reports(reports, labeler), profile=profile)  # type: ignore[arg-type]

    def end_to_end() -> object:
        return loop.run_until_complete(_end_to_end())

    async def _end_to_end_batch64() -> list:
        # The streaming connector labels one poll batch at a time; here 64 messages per labeler call.
        reports = [r for _ in range(64) for r in parse_reports(MLLP)]
        return convert_reports(reports, await label_reports(reports, labeler), profile=profile)  # type: ignore[arg-type]

    def end_to_end_batch64() -> object:
        return loop.run_until_complete(_end_to_end_batch64())

    messages = distinct_messages()
    position = [0]

    async def _end_to_end_distinct() -> list:
        raw = messages[position[0] % len(messages)]
        position[0] += 1
        reports = parse_reports(raw)
        return convert_reports(reports, await label_reports(reports, labeler), profile=profile)  # type: ignore[arg-type]

    def end_to_end_distinct() -> object:
        return loop.run_until_complete(_end_to_end_distinct())

    return {
        "hl7apy parse_message (tolerant, no groups)": hl7apy_parse,
        "python-hl7 hl7.parse": python_hl7_parse,
        "radlabel parse_reports (bytes -> Report)": radlabel_parse,
        "parse + FHIR bundle, full fhir.resources validation": parse_fhir_full_validation,
        "parse + FHIR bundle, hot-path validation": parse_fhir,
        "END TO END: parse + rules + validated bundle": end_to_end,
        "END TO END, 64 messages per labeler batch": end_to_end_batch64,
        f"END TO END, {DISTINCT:,} distinct messages in turn": end_to_end_distinct,
    }


def messages_per_call(name: str) -> int:
    return 64 if "64 messages" in name else 1


def run(seconds: float, rounds: int, gc_freeze: bool = False) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    loop = asyncio.new_event_loop()
    variants = build_variants(loop)
    for fn in variants.values():  # warm-up: imports, caches, validated shapes (one message, not all of them)
        fn()
    if gc_freeze:
        # What the streaming connector does after start-up (connector/stream/app.py): long-lived objects leave
        # the collector's generations, so full collections stop rescanning them on the hot path.
        gc.freeze()
    rates: dict[str, list[float]] = {name: [] for name in variants}
    cpu_rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            count = 0
            start = time.perf_counter()
            cpu_start = time.process_time()
            deadline = start + seconds
            while True:
                fn()
                count += 1
                now = time.perf_counter()
                if now >= deadline:
                    break
            cpu = time.process_time() - cpu_start
            rates[name].append(count * messages_per_call(name) / (now - start))
            # CPU time excludes the time other processes held the core: the rate on a core of our own.
            cpu_rates[name].append(count * messages_per_call(name) / cpu)
    loop.close()
    return rates, cpu_rates


def stages(repeat: int = 3, count: int = 2000) -> dict[str, float]:
    """CPU ms per message for each stage of the end-to-end path, over the distinct messages (median of ``repeat``)."""
    loop = asyncio.new_event_loop()
    labeler = RuleLabeler()
    messages = distinct_messages()
    reports = [parse_reports(raw) for raw in messages]
    labels = [loop.run_until_complete(label_reports(r, labeler)) for r in reports]
    shared = [build_bundle_shared(r[0], ls[0]) for r, ls in zip(reports, labels)]
    work = {
        "parse_reports": lambda i: parse_reports(messages[i]),
        "rule labeler (label_reports, one event-loop run)": lambda i: loop.run_until_complete(
            label_reports(reports[i], labeler)
        ),
        "FHIR build (build_bundle_shared)": lambda i: build_bundle_shared(reports[i][0], labels[i][0]),  # type: ignore[arg-type]
        "FHIR hot-path validation": lambda i: validate_bundle(shared[i]),
        "canonical JSON (bundle_bytes)": lambda i: bundle_bytes(shared[i]),
        "convert_reports (build + validate + JSON + Converted)": lambda i: convert_reports(reports[i], labels[i]),  # type: ignore[arg-type]
    }
    out: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(repeat):
        for name, fn in work.items():
            start = time.process_time()
            for i in range(count):
                fn(i % len(messages))
            out[name].append((time.process_time() - start) * 1000 / count)
    loop.close()
    return {name: round(statistics.median(v), 3) for name, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this core (default: the last one)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--stages", action="store_true", help="print CPU ms per stage instead")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after warm-up, as `radlabel run` does")
    parser.add_argument("--profile", choices=("standalone", "enrich"), default="standalone",
                        help="output profile of the bundles (fhir.profile)")
    args = parser.parse_args()
    global PROFILE
    PROFILE = OutputProfile(kind=args.profile)
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    if args.stages:
        for name, ms in stages().items():
            print(f"{name:56s} {ms:.3f} ms")
        return
    load_before = os.getloadavg()
    rates, cpu_rates = run(args.seconds, args.rounds, gc_freeze=args.gc_freeze)
    load_after = os.getloadavg()
    result = {
        "message_bytes": len(MESSAGE),
        "python": sys.version.split()[0],
        "gc_freeze": args.gc_freeze,
        "profile": args.profile,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, pinned to core {cpu}",
        "loadavg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "rates": {
            name: {
                "best": round(max(v)),
                "median": round(statistics.median(v)),
                "cpu_median": round(statistics.median(cpu_rates[name])),
                "cpu_ms_per_msg": round(1000 / statistics.median(cpu_rates[name]), 3),
            }
            for name, v in rates.items()
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"message: {result['message_bytes']} bytes ORU^R01 v2.5.1; {result['machine']}; python {result['python']}; "
          f"profile {args.profile}")
    print(f"1-min load average before/after: {result['loadavg_before_after']}")
    print("wall: messages per wall-clock second; cpu: per CPU-second of this process (the rate on an idle core)")
    print(f"{'variant':56s} {'wall best':>9s} {'wall med':>8s} {'cpu med':>8s} {'cpu ms/msg':>10s}")
    for name, r in result["rates"].items():
        print(f"{name:56s} {r['best']:>9d} {r['median']:>8d} {r['cpu_median']:>8d} {r['cpu_ms_per_msg']:>10.3f}")


if __name__ == "__main__":
    main()
