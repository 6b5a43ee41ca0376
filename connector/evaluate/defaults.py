"""Evaluation constants the CLI shows in --help: kept apart from the numeric modules (numpy, scipy, scikit-learn,
pandas) so that `radlabel --help` does not import them."""

MODES: tuple[str, ...] = ("weighted", "positive-only")
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 42
