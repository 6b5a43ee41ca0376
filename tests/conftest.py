"""Shared test helpers: where the optional shared data lives (../shared beside the repo, or RADLABEL_SHARED)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("RADLABEL_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when present; tests that need it skip otherwise (the project passes without it)."""
    data = shared_dir() / "data"
    if not data.is_dir():
        pytest.skip("shared data not present (set RADLABEL_SHARED)")
    return data
