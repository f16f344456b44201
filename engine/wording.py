"""Words shared by the command line and the window."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """``n`` and the noun in the number that goes with it: "1 photo", "3 photos", "0 folders"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
