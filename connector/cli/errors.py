"""Exit codes and one-line errors for every `radlabel` command.

Every command is wrapped (connector/cli/__init__.py) so that a failure the user can act on is one line on
stderr, "error: <what> (<what to do>)", with an exit code that means the same in every command; never a
traceback. An unexpected exception (a bug) is one line too, naming RADLABEL_DEBUG=1, which re-raises it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from enum import IntEnum
from typing import Any, TypeVar

import typer

try:
    import click

    # typer < 0.29 is built on click: its Exit/Abort/usage errors are click's classes and click handles them.
    _CLICK_HANDLED: tuple[type[BaseException], ...] = (click.exceptions.Exit, click.ClickException, click.Abort)
except ImportError:
    # typer >= 0.29 vendors click (typer._click) and no longer depends on it, so a clean install (the image)
    # has no click at all; its own classes (typer.Exit, typer.Abort) are listed below.
    _CLICK_HANDLED = ()


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug: rerun with RADLABEL_DEBUG=1 for the traceback
    USAGE = 2  # bad option, setting, settings file or path (click's own usage errors use 2 as well)
    REJECTED = 3  # the input was refused: unreadable input file, or convert --fail-on-reject with dead letters
    UNAVAILABLE = 4  # a service the command needs did not answer: model endpoint, Kafka broker
    PARTIAL = 5  # it ran, but some reports could not be labeled (label: see the failed-ids file)


class CliError(Exception):
    """A failure with its exit code; ``str()`` is the one line shown to the user."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def usage(message: str) -> CliError:
    return CliError(message, ExitCode.USAGE)


F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(func: F) -> F:
    """Turn the errors a user can meet into one line and an :class:`ExitCode`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, *_CLICK_HANDLED, KeyboardInterrupt):
            raise
        except CliError as exc:
            _fail(str(exc), exc.code)
        except typer.BadParameter as exc:  # raised inside a command body (typer's own class, not click's here)
            _fail(exc.format_message() if hasattr(exc, "format_message") else str(exc), ExitCode.USAGE)
        except Exception as exc:  # noqa: BLE001 - the point: no traceback reaches the user
            code, message = _classify(exc)
            if code is ExitCode.INTERNAL and os.environ.get("RADLABEL_DEBUG"):
                raise
            _fail(message, code)

    return wrapper  # type: ignore[return-value]


def _classify(exc: Exception) -> tuple[ExitCode, str]:
    from connector.settings_sources import SettingsError

    if isinstance(exc, SettingsError):
        return ExitCode.USAGE, str(exc)
    try:
        from mappings.labels import LabelerUnavailable
    except ImportError:  # pragma: no cover - mappings is part of the package
        LabelerUnavailable = ()  # type: ignore[assignment]  # noqa: N806
    if LabelerUnavailable and isinstance(exc, LabelerUnavailable):
        return ExitCode.UNAVAILABLE, f"labeler unavailable: {exc}"
    return ExitCode.INTERNAL, (
        f"internal error ({type(exc).__name__}: {str(exc)[:200]}); rerun with RADLABEL_DEBUG=1 for the traceback "
        "and report it"
    )


def labeler_unavailable(settings: Any, exc: BaseException, consequence: str) -> CliError:
    """The labeler gave up: name the endpoint and why (connection refused, TLS, 401, timeout, ...)."""
    if settings.kind == "llm" and settings.endpoint:
        import asyncio

        from inference_client.diagnose import diagnose_endpoint

        key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        cause = asyncio.run(diagnose_endpoint(settings.endpoint, api=settings.api, ca_bundle=settings.ca_bundle,
                                              api_key=key, timeout_s=min(5.0, settings.timeout_s)))
        return CliError(f"labeler unavailable: model endpoint {cause}; {consequence}", ExitCode.UNAVAILABLE)
    return CliError(f"labeler unavailable ({type(exc).__name__}: {exc}); {consequence}", ExitCode.UNAVAILABLE)


def _fail(message: str, code: ExitCode) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=int(code))


def wrap_commands(app: typer.Typer) -> None:
    """Apply :func:`one_line_errors` to every command registered on ``app``."""
    for info in app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "_one_line_errors", False):
            info.callback = one_line_errors(info.callback)
            info.callback._one_line_errors = True  # type: ignore[attr-defined]


__all__ = ["CliError", "ExitCode", "labeler_unavailable", "one_line_errors", "usage", "wrap_commands"]
