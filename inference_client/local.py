"""In-process labeler: a fine-tuned model directory (``radlabel train``/``export`` output) run with transformers.

Batched greedy decoding of exactly the prompt tokens training used (:mod:`training.format`), stopped at the
end-of-turn token, then the strict :func:`mappings.prompt.parse_answer`. A report whose prompt plus answer budget
does not fit the model context is a :class:`ReportTooLong`, never truncated. The labeler version is the model
manifest's version, so FHIR provenance names the exact weights.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from mappings.labels import AnswerInvalid, LabelerError, LabelerInfo, LabelSet, PerReportLabeler, ReportTooLong
from mappings.prompt import PROMPT_VERSION, parse_answer

# A full 14-key compact answer is about 110 Qwen tokens; leave headroom so a valid answer is never cut.
DEFAULT_MAX_NEW_TOKENS = 160


class TransformersLabeler(PerReportLabeler):
    def __init__(self, model_dir: str | Path, batch_size: int = 8, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 threads: int | None = None, context_length: int | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from training.export import read_manifest
        from training.models import end_of_turn_id

        self.model_dir = Path(model_dir)
        manifest = read_manifest(self.model_dir)
        # Train/serve skew guard: a model trained on another prompt version would still answer, just worse.
        trained_on = str(manifest.get("prompt_version", ""))
        if trained_on != PROMPT_VERSION:
            raise ValueError(f"{self.model_dir} was trained with prompt version {trained_on or 'unknown'}; this "
                             f"radlabel serves prompt version {PROMPT_VERSION}: retrain or use a matching release")
        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(str(self.model_dir)).eval()
        self.eot = end_of_turn_id(self.tokenizer)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.context_length = context_length or int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.retrieval_k = int(manifest.get("hyperparameters", {}).get("retrieval_k", 0) or 0)
        self.retriever = None
        if self.retrieval_k > 0:
            from training.retrieval import Retriever

            self.retriever = Retriever.load(self.model_dir / "retrieval")
        base = manifest.get("base_model", {}).get("base")
        self.info = LabelerInfo(name="llm", version=manifest["version"], model=base)
        # generate() is not re-entrant on one model; the connector may call from several tasks.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: object, **kwargs) -> TransformersLabeler:
        model = getattr(settings, "model", None)
        if not model:
            raise ValueError("the in-process llm labeler needs a model directory (--model PATH)")
        return cls(model, **kwargs)

    def _prompts(self, reports: Sequence[str]) -> list[list[int]]:
        from training.format import prompt_ids

        shots = ([[] for _ in reports] if self.retriever is None
                 else self.retriever.examples_for(list(reports), self.retrieval_k))
        return [prompt_ids(self.tokenizer, r, s) for r, s in zip(reports, shots)]

    @torch.inference_mode()
    def _generate(self, prompts: list[list[int]]) -> list[tuple[str, bool]]:
        """Greedy answers for pre-tokenized prompts: (text, ended) where ended means the end-of-turn was reached."""
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        out = self.model.generate(input_ids=input_ids, attention_mask=attention, do_sample=False,
                                  max_new_tokens=self.max_new_tokens, eos_token_id=self.eot, pad_token_id=pad)
        results = []
        for row in out[:, width:].tolist():
            ended = self.eot in row
            tokens = row[: row.index(self.eot)] if ended else row
            results.append((self.tokenizer.decode(tokens, skip_special_tokens=True), ended))
        return results

    def label_sync(self, reports: Sequence[str]) -> list[LabelSet | LabelerError]:
        outcomes: list[LabelSet | LabelerError | None] = [None] * len(reports)
        prompts = self._prompts(reports)
        todo = []
        for i, ids in enumerate(prompts):
            if len(ids) + self.max_new_tokens > self.context_length:
                outcomes[i] = ReportTooLong(f"prompt is {len(ids)} tokens + {self.max_new_tokens} for the answer; "
                                            f"the model context is {self.context_length}")
            else:
                todo.append(i)
        # Similar lengths batch together: less padding, so less left-pad work per generated token.
        todo.sort(key=lambda i: len(prompts[i]))
        with self._lock:
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                for i, (text, ended) in zip(chunk, self._generate([prompts[i] for i in chunk])):
                    if not ended:
                        outcomes[i] = AnswerInvalid(f"answer did not end within {self.max_new_tokens} tokens")
                        continue
                    try:
                        outcomes[i] = LabelSet(labels=parse_answer(text), labeler=self.info)
                    except AnswerInvalid as exc:
                        outcomes[i] = exc
        return outcomes  # type: ignore[return-value]

    async def label_batch_detailed(self, reports: Sequence[str]) -> list[LabelSet | LabelerError]:
        return await asyncio.to_thread(self.label_sync, list(reports))

    async def aclose(self) -> None:
        self.model = None  # type: ignore[assignment]
