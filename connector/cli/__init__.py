"""The one CLI, ``radlabel``. Each sub-command lives in its own module and registers itself here, so the
commands stay small and independent (convert, label, evaluate, train, export, run, demo, broker, mllp, publish,
send)."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Label chest X-ray reports from HL7 v2 into FHIR R4.")

_COMMAND_MODULES = ("convert", "label", "evaluate", "train", "stream", "mllp")

for _name in _COMMAND_MODULES:
    importlib.import_module(f"connector.cli.{_name}").register(app)


def main() -> None:
    app()
