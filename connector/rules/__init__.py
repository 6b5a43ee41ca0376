"""Rule labeler: CheXpert-faithful core plus guideline-driven improvements (see docs/EVALUATION.md)."""

from connector.rules.labeler import RULES_VERSION, RuleLabeler, label_report

__all__ = ["RULES_VERSION", "RuleLabeler", "label_report"]
