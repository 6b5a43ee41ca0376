"""Clients for model servers behind :class:`mappings.labels.Labeler`.

- :mod:`inference_client.openai_compat` - OpenAI-compatible /v1/chat/completions (TGI /v1, vLLM, SGLang,
  llama.cpp) with a JSON-Schema ``response_format``;
- :mod:`inference_client.tgi` - TGI's native /generate with ``grammar``.
"""

__version__ = "0.1.0"
