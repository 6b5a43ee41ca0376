"""`response_format` presets: OpenAI-compatible servers disagree on how to ask for JSON-Schema output.

=========  =======================================================================  ==================================
preset     request body                                                             servers
=========  =======================================================================  ==================================
openai     {"type":"json_schema","json_schema":{"name":N,"schema":S,"strict":true}}  OpenAI, vLLM, SGLang, llama-server
llamacpp   {"type":"json_object","schema":S}                                        llama-cpp-python (also llama-server)
tgi        {"type":"json","value":S}                                                TGI /v1/chat/completions
=========  =======================================================================  ==================================

A server that does not understand the form it gets may ignore it silently (unconstrained output) - that is why the
answer is always parsed strictly as well. "auto" asks the server who it is (see :func:`detect_preset`).
"""

from __future__ import annotations

from typing import Any, Literal

Preset = Literal["openai", "llamacpp", "tgi"]
PRESETS: tuple[Preset, ...] = ("openai", "llamacpp", "tgi")
SCHEMA_NAME = "chexpert_labels"


def response_format(preset: Preset, schema: dict[str, Any]) -> dict[str, Any]:
    if preset == "openai":
        return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True}}
    if preset == "llamacpp":
        return {"type": "json_object", "schema": schema}
    if preset == "tgi":
        return {"type": "json", "value": schema}
    raise ValueError(f"unknown response_format preset {preset!r}; choose one of {', '.join(PRESETS)}")


def detect_preset(models: Any, info: Any = None) -> Preset:
    """Pick a preset from a server's GET /v1/models answer and, when it has one, GET /info (TGI).

    Signals: TGI's /info names its router ("text-generation-router"); llama-cpp-python lists models as
    owned_by "me" and accepts only the json_object form; vLLM ("vllm"), SGLang ("sglang"), llama-server
    ("llamacpp") and OpenAI take the json_schema form, which is also the default for anything unknown.
    """
    if isinstance(info, dict) and "text-generation" in str(info.get("router", "")):
        return "tgi"
    data = models.get("data") if isinstance(models, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        if str(data[0].get("owned_by", "")).lower() == "me":
            return "llamacpp"
    return "openai"
