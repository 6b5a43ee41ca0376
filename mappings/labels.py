"""Label types and the labeler interface every backend implements.

Backends (rules, in-process model, TGI, OpenAI-compatible servers) sit behind :class:`Labeler`, the way httpx
puts transports behind one base class: the connector, the CLI and evaluation only ever see this interface.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mappings.vocabulary import ALLOWED, OBSERVATIONS, Certainty, encode_csv_value


class Span(BaseModel):
    """Character span [start, end) into the labeled report text. Spans, not text, so evidence is PHI-free."""

    model_config = ConfigDict(frozen=True)
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class LabelerInfo(BaseModel):
    """Who produced a label set: carried into FHIR method/device/Provenance and Kafka headers."""

    model_config = ConfigDict(frozen=True)
    name: str  # e.g. "rules", "llm"
    version: str  # labeler code version or model manifest version
    model: str | None = None  # model id / manifest id for LLM labelers


class LabelSet(BaseModel):
    """Labels for one report. Observations absent from ``labels`` are blank (not mentioned)."""

    model_config = ConfigDict(frozen=True)
    labels: dict[str, Certainty] = Field(default_factory=dict)
    evidence: dict[str, list[Span]] = Field(default_factory=dict)
    labeler: LabelerInfo
    # True when a fallback labeler produced these labels instead of the configured one.
    fallback: bool = False

    @field_validator("labels")
    @classmethod
    def _known_observations(cls, value: dict[str, Certainty]) -> dict[str, Certainty]:
        for name, certainty in value.items():
            if name not in ALLOWED:
                raise ValueError(f"unknown observation {name!r}")
            if certainty not in ALLOWED[name]:
                raise ValueError(f"{name} cannot be {certainty.value}")
        # Keep vocabulary order so serialisations are deterministic.
        return {name: value[name] for name in OBSERVATIONS if name in value}

    def csv_row(self) -> list[str]:
        """The 14 CheXpert CSV cells in dataset order."""
        return [encode_csv_value(self.labels.get(name)) for name in OBSERVATIONS]


class LabelerError(Exception):
    """Base for labeler failures. The connector maps subclasses to backpressure or fallback."""


class LabelerUnavailable(LabelerError):
    """Transient: the backend cannot answer now (server down, timeout, circuit open). Retry later; never drop."""


class AnswerInvalid(LabelerError):
    """The model answered something that is not valid under the answer schema. Never guess a label from it."""


class ReportTooLong(LabelerError):
    """The report does not fit the model context; it is not truncated silently."""


class Labeler(abc.ABC):
    """One small interface for every labeling backend.

    ``label_batch`` takes report texts and returns one :class:`LabelSet` per report, in order. Implementations
    raise :class:`LabelerUnavailable` for transient failures (the whole batch), and may return per-report
    failures by raising :class:`AnswerInvalid` / :class:`ReportTooLong` only through :meth:`label_batch_detailed`.
    """

    info: LabelerInfo

    @abc.abstractmethod
    async def label_batch(self, reports: Sequence[str]) -> list[LabelSet]:
        raise NotImplementedError

    async def label_batch_detailed(self, reports: Sequence[str]) -> list[LabelSet | LabelerError]:
        """Per-report outcome: a LabelSet or the typed error for that report. Default: all-or-nothing."""
        return list(await self.label_batch(reports))

    async def ready(self) -> bool:
        """Readiness probe (e.g. model server health). Local labelers are always ready."""
        return True

    async def aclose(self) -> None:
        """Release connections / models."""

    async def __aenter__(self) -> Labeler:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class PerReportLabeler(Labeler):
    """A backend whose natural result is per report (model labelers: one report's answer can be invalid while its
    neighbours are fine). It implements :meth:`label_batch_detailed`; :meth:`label_batch` is the all-or-nothing
    view of it, so that rule lives here once instead of in every backend."""

    @abc.abstractmethod
    async def label_batch_detailed(self, reports: Sequence[str]) -> list[LabelSet | LabelerError]:
        raise NotImplementedError

    async def label_batch(self, reports: Sequence[str]) -> list[LabelSet]:
        """All-or-nothing: the first per-report error is raised."""
        outcomes = await self.label_batch_detailed(reports)
        for outcome in outcomes:
            if isinstance(outcome, LabelerError):
                raise outcome
        return outcomes  # type: ignore[return-value]


async def label_texts(labeler: Labeler, texts: Sequence[str]) -> list[LabelSet | LabelerError]:
    """Label report texts the way every radlabel path must: a text that asserts nothing
    (:mod:`mappings.nondiagnostic`) is never shown to the labeler and gets an all-blank LabelSet naming it, so no
    backend can turn "report pending" into No Finding. The rest goes to the labeler in one batch."""
    from mappings.nondiagnostic import non_diagnostic_reason

    out: list[LabelSet | LabelerError] = []
    asked: list[int] = []
    for i, text in enumerate(texts):
        out.append(LabelSet(labeler=labeler.info))
        if non_diagnostic_reason(text) is None:
            asked.append(i)
    answers = await labeler.label_batch_detailed([texts[i] for i in asked]) if asked else []
    for i, answer in zip(asked, answers, strict=True):
        out[i] = answer
    return out


def labels_from_mapping(values: Mapping[str, Certainty | None]) -> dict[str, Certainty]:
    """Drop blanks and order by vocabulary."""
    return {name: values[name] for name in OBSERVATIONS if values.get(name) is not None}  # type: ignore[misc]
