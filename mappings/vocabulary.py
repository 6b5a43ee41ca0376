"""The 14 CheXpert observations and the certainty classes.

This is the single source of truth for observation names and their order: CSV columns, prompt answers,
JSON Schemas, FHIR codes and evaluation tables are all derived from these tuples.
"""

from __future__ import annotations

from enum import Enum

# CheXpert dataset order (DOMAIN.md §1). Order matters: CSV columns and answer keys follow it.
OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"


class Certainty(str, Enum):
    """A mentioned observation's class. "Blank" (not mentioned) is the absence of a label, never a value."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    UNCERTAIN = "uncertain"


# CheXpert CSV encoding; blank is the empty string.
CSV_ENCODING: dict[Certainty, str] = {
    Certainty.POSITIVE: "1",
    Certainty.NEGATIVE: "0",
    Certainty.UNCERTAIN: "-1",
}
_CSV_DECODING: dict[str, Certainty] = {
    "1": Certainty.POSITIVE,
    "1.0": Certainty.POSITIVE,
    "0": Certainty.NEGATIVE,
    "0.0": Certainty.NEGATIVE,
    "-1": Certainty.UNCERTAIN,
    "-1.0": Certainty.UNCERTAIN,
}

# Aggregation order when one observation is mentioned several times: positive > uncertain > negative.
PRECEDENCE: dict[Certainty, int] = {Certainty.NEGATIVE: 0, Certainty.UNCERTAIN: 1, Certainty.POSITIVE: 2}

# "No Finding" only ever takes the positive class (DOMAIN.md §1).
ALLOWED: dict[str, tuple[Certainty, ...]] = {
    name: ((Certainty.POSITIVE,) if name == NO_FINDING else tuple(Certainty)) for name in OBSERVATIONS
}


def decode_csv_value(value: str | float | int | None) -> Certainty | None:
    """CheXpert CSV cell -> Certainty (None for blank). Raises ValueError on anything else."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from pandas
        return None
    text = str(value).strip()
    if text == "":
        return None
    try:
        return _CSV_DECODING[text]
    except KeyError:
        raise ValueError(f"not a CheXpert label value: {text!r}") from None


def encode_csv_value(value: Certainty | None) -> str:
    return "" if value is None else CSV_ENCODING[value]


def merge(a: Certainty | None, b: Certainty | None) -> Certainty | None:
    """Combine two mentions of one observation with CheXpert's precedence."""
    if a is None:
        return b
    if b is None:
        return a
    return a if PRECEDENCE[a] >= PRECEDENCE[b] else b
