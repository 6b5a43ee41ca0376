"""Spreadsheet formula injection (OWASP "CSV injection"): a text cell that starts with = + - @ (or tab, CR) is
run as a formula by Excel/LibreOffice. Text cells we write get a "'" prefix; our readers strip it again, so our
own files read back to the values that were written. Label cells (1, 0, -1, blank) are never passed here."""

from __future__ import annotations

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A text cell a spreadsheet will not execute."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def restore(cell: str) -> str:
    """Undo :func:`neutralise`."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell


__all__ = ["neutralise", "restore"]
