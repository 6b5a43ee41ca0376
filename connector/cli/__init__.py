"""The one CLI, ``radlabel``. Each sub-command lives in its own module and registers itself here, so the
commands stay small and independent (convert, label, evaluate, train, export, run, demo, broker, mllp, publish,
send). Every command reports failures as one line with a documented exit code (connector/cli/errors.py)."""

from __future__ import annotations

import importlib
from typing import Annotated, Optional

import typer

from connector.cli.errors import wrap_commands

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Label chest X-ray reports from HL7 v2 into FHIR R4.")

_COMMAND_MODULES = ("convert", "label", "evaluate", "train", "stream", "mllp", "replay", "audit", "sink")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"radlabel {version('radlabel')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            from connector import __version__

            typer.echo(f"radlabel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="print the version and exit")] = None,
) -> None:
    """Label chest X-ray reports from HL7 v2 into FHIR R4."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f"connector.cli.{_name}").register(app)
wrap_commands(app)


def main() -> None:
    app()
