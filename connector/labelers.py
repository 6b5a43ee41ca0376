"""Labeler factory: one place that turns settings into a :class:`mappings.labels.Labeler`.

Backends are imported lazily so a connector-only install (no torch) can run the rule labeler and the
server clients.
"""

from __future__ import annotations

from pathlib import Path

from mappings.labels import Labeler

from connector.settings import LabelerSettings


def make_labeler(settings: LabelerSettings) -> Labeler:
    """Raises ValueError (one line naming the setting) for settings that cannot work."""
    if settings.kind == "rules":
        from connector.rules.labeler import RuleLabeler

        return RuleLabeler(profile=settings.rules_profile)
    if settings.ca_bundle and not Path(settings.ca_bundle).is_file():
        raise ValueError(f"CA file {settings.ca_bundle} does not exist (labeler.ca_bundle)")
    if settings.endpoint:
        if settings.api == "tgi":
            from inference_client.tgi import TGILabeler

            return TGILabeler.from_settings(settings)
        from inference_client.openai_compat import OpenAILabeler

        return OpenAILabeler.from_settings(settings)
    if settings.model:
        if not Path(settings.model).is_dir():
            raise ValueError(f"model directory {settings.model} does not exist (--model / labeler.model)")
        from inference_client.local import TransformersLabeler

        return TransformersLabeler.from_settings(settings)
    raise ValueError("the llm labeler needs --model PATH (in-process) or --endpoint URL (model server)")
