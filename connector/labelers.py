"""Labeler factory: one place that turns settings into a :class:`mappings.labels.Labeler`.

Backends are imported lazily so a connector-only install (no torch) can run the rule labeler and the
server clients.
"""

from __future__ import annotations

from mappings.labels import Labeler

from connector.settings import LabelerSettings


def make_labeler(settings: LabelerSettings) -> Labeler:
    if settings.kind == "rules":
        from connector.rules.labeler import RuleLabeler

        return RuleLabeler(profile=settings.rules_profile)
    if settings.endpoint:
        if settings.api == "tgi":
            from inference_client.tgi import TGILabeler

            return TGILabeler.from_settings(settings)
        from inference_client.openai_compat import OpenAILabeler

        return OpenAILabeler.from_settings(settings)
    if settings.model:
        from inference_client.local import TransformersLabeler

        return TransformersLabeler.from_settings(settings)
    raise ValueError("the llm labeler needs --model PATH (in-process) or --endpoint URL (model server)")
