from __future__ import annotations

import logging

import pytest
import structlog


@pytest.fixture(autouse=True)
def _restore_logging():
    """`radlabel run` configures process-wide logging onto the CliRunner's stderr, which is closed when the
    invocation ends: put the previous configuration back so later tests do not write to a closed stream."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
