"""Domain core shared by every part of radlabel: the observation vocabulary, terminology codes,
the label types and labeler interface, and the one prompt/answer format used by training and serving."""

from mappings.vocabulary import CSV_ENCODING, OBSERVATIONS, Certainty

__all__ = ["OBSERVATIONS", "Certainty", "CSV_ENCODING"]
