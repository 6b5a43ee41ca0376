#!/usr/bin/env python3
"""Check a REAL TGI deployment with radlabel's own clients (the live counterpart of tests/inference/test_tgi_contract.py).

Run from the repository root on the connector host:

    PYTHONPATH=. python deploy/tgi/check_tgi.py --endpoint https://tgi.internal:8443 \\
        --token "$RADLABEL_LABELER__API_KEY" --tokenizer /models/radlabel-model [--ca-bundle ca.pem]

Checks: /health and /info; native /generate with the answer grammar (labels parse, truncation -> AnswerInvalid,
over-long prompt -> ReportTooLong without truncation); /v1/chat/completions with response_format auto-detected as
TGI's {"type":"json","value":S}; throughput at a concurrency. Only synthetic reports are sent (no PHI).
For vLLM / SGLang (OpenAI API only) pass --skip-native. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inference_client.config import ClientConfig  # noqa: E402
from inference_client.openai_compat import OpenAILabeler  # noqa: E402
from inference_client.tgi import TGILabeler  # noqa: E402
from mappings.labels import AnswerInvalid, LabelSet, ReportTooLong  # noqa: E402

SYNTHETIC = [
    "FINDINGS: Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "FINDINGS: Cardiomegaly with mild pulmonary edema. Small bilateral pleural effusions.",
    "FINDINGS: Right lower lobe opacity, possibly pneumonia. Right PICC tip at the cavoatrial junction.",
    "FINDINGS: Healed left rib fractures. No acute cardiopulmonary abnormality.",
]

failures: list[str] = []


def report(ok: bool, name: str, detail: str = "") -> None:
    print(f"[{'PASS' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def fmt(outcome: object) -> str:
    if isinstance(outcome, LabelSet):
        return "{" + ", ".join(f"{k}={v.value}" for k, v in outcome.labels.items()) + "}"
    return f"{type(outcome).__name__}: {outcome}"


async def check_native(cfg: ClientConfig, args: argparse.Namespace) -> None:
    async with TGILabeler(cfg) as labeler:
        ready = await labeler.ready()
        report(ready, "GET /health", f"model={labeler.info.model}")
        if not ready:
            return
        info = await labeler._get_json("/info") or {}
        print(
            f"       /info: version={info.get('version')} max_input_tokens={info.get('max_input_tokens')} "
            f"max_total_tokens={info.get('max_total_tokens')} max_concurrent_requests={info.get('max_concurrent_requests')}"
        )
        room = (info.get("max_total_tokens") or 0) - (info.get("max_input_tokens") or 0)
        if info and room < cfg.max_new_tokens:
            print(f"       note: max_total_tokens - max_input_tokens = {room} < max_new_tokens {cfg.max_new_tokens}")
        outcomes = await labeler.label_batch_detailed(SYNTHETIC)
        ok = all(isinstance(o, LabelSet) for o in outcomes)
        report(ok, "POST /generate with grammar: answers parse under the schema")
        for text, outcome in zip(SYNTHETIC, outcomes, strict=True):
            print(f"       {text[:50]!r:55} -> {fmt(outcome)}")

    async with TGILabeler(cfg.model_copy(update={"max_new_tokens": 2})) as labeler:
        [cut] = await labeler.label_batch_detailed(SYNTHETIC[1:2])
        report(isinstance(cut, AnswerInvalid), "max_new_tokens=2 -> AnswerInvalid (finish_reason length)", fmt(cut))

    async with TGILabeler(cfg) as labeler:
        limit = int(info.get("max_input_tokens") or 8192)
        long_report = "The lungs are clear and the heart is normal. " * (limit // 5 + 50)
        [too_long] = await labeler.label_batch_detailed([long_report])
        report(isinstance(too_long, ReportTooLong), "prompt over max_input_tokens -> ReportTooLong", fmt(too_long))

    await throughput(TGILabeler(cfg.model_copy(update={"max_concurrency": args.concurrency})), args.reports, "native")


async def check_v1(cfg: ClientConfig, args: argparse.Namespace) -> None:
    async with OpenAILabeler(cfg.model_copy(update={"response_format": args.response_format})) as labeler:
        ready = await labeler.ready()
        report(ready, "GET /v1/models", f"model={labeler.model_name} response_format preset={labeler.preset}")
        if not ready:
            return
        outcomes = await labeler.label_batch_detailed(SYNTHETIC)
        report(all(isinstance(o, LabelSet) for o in outcomes), "POST /v1/chat/completions: answers parse")
        for text, outcome in zip(SYNTHETIC, outcomes, strict=True):
            print(f"       {text[:50]!r:55} -> {fmt(outcome)}")
    await throughput(
        OpenAILabeler(cfg.model_copy(update={"max_concurrency": args.concurrency, "response_format": args.response_format})),
        args.reports,
        "v1",
    )


async def throughput(labeler: TGILabeler | OpenAILabeler, n: int, name: str) -> None:
    reports = [SYNTHETIC[i % len(SYNTHETIC)] + f" Exam {i}." for i in range(n)]
    async with labeler:
        start = time.perf_counter()
        outcomes = await labeler.label_batch_detailed(reports)
        wall = time.perf_counter() - start
        ok = sum(isinstance(o, LabelSet) for o in outcomes)
        report(
            ok == n,
            f"{name} throughput at concurrency {labeler.config.max_concurrency}",
            f"{n / wall:.2f} reports/s, {labeler.stats.completion_tokens / wall:.1f} generated tokens/s, "
            f"{ok}/{n} parsed, retries={labeler.stats.retries}, statuses={labeler.stats.by_status}",
        )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--token", default=os.environ.get("RADLABEL_LABELER__API_KEY"))
    parser.add_argument("--tokenizer", help="model dir whose chat template /generate prompts use (else ChatML)")
    parser.add_argument("--ca-bundle")
    parser.add_argument("--response-format", default="auto", choices=["auto", "tgi", "openai", "llamacpp"])
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--reports", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--skip-native", action="store_true", help="OpenAI-compatible servers (vLLM, SGLang)")
    parser.add_argument("--skip-v1", action="store_true")
    args = parser.parse_args()
    cfg = ClientConfig(
        endpoint=args.endpoint,
        api_key=args.token,
        tokenizer=args.tokenizer,
        ca_bundle=args.ca_bundle,
        max_new_tokens=args.max_new_tokens,
        timeout_s=args.timeout,
        max_retries=2,
    )
    if not args.skip_native:
        await check_native(cfg, args)
    if not args.skip_v1:
        await check_v1(cfg, args)
    print(f"{'OK' if not failures else 'FAILED: ' + ', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
