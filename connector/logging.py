"""structlog JSON logging, for our own log lines and for every library's (aiokafka, httpx, asyncio, ...).

PHI policy: log lines carry counts, codes, ids we mint (bundle ids are hashes) and Kafka coordinates, never report
text, patient names, MRNs, accession numbers or message control ids. Call sites only pass such fields; there is
no scrubbing heuristic to rely on, and tests capture logs to check the fixtures' PHI never appears. (python-hl7's
loggers, which quote field values, are disabled in connector/hl7/parse.py.)

Standard-library log records are rendered by the same processors through structlog's ProcessorFormatter, so a
process writes one format only: a log shipper never meets a plain-text line between JSON ones.
"""

from __future__ import annotations

import logging
import sys

import structlog

# The configured level, for hot paths that would compute a line's fields only to have it filtered (structlog's
# filtering logger drops the call, but the arguments are built first). Unconfigured structlog prints every level.
_level = logging.NOTSET


def enabled(level: int) -> bool:
    """Whether a line at ``level`` would be written: lets a per-message call site skip building its fields."""
    return level >= _level


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    global _level
    numeric = getattr(logging, level.upper(), logging.INFO)
    _level = numeric
    shared: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.processors.format_exc_info],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]  # replaces basicConfig's plain-text handler, and any earlier one
    root.setLevel(numeric)
    # httpx logs every request line at INFO and httpcore the headers at DEBUG: the FHIR sink's search URLs carry
    # accession numbers and MRNs, and its headers a bearer token. Their warnings still come through.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
