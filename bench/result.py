"""What every bench shares about its result: the machine-readable last line, and how a run that measured
nothing ends.

A bench prints its figures last, on one line of ``key=value`` pairs (:func:`figures_line`, read back by
:func:`parse_figures`). A result that cannot be true (nothing was measured, a peer refused the bench's
streams or calls, a figure is NaN) is not printed as a figure: the bench raises :class:`ImpossibleResult`
and :func:`run` prints ``<bench>: impossible result: <reason>`` to stderr and exits 1. Any other
exception ends the run the same way, with its traceback first and ``<bench>: failed: <reason>`` last.
"""

from __future__ import annotations

import math
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import NoReturn

__all__ = ["ImpossibleResult", "figures_line", "parse_figures", "require_finite", "run", "summarize_closes"]


class ImpossibleResult(Exception):
    """The bench's figures would be a lie; the message says what went wrong."""


def figures_line(**figures: float | int) -> str:
    """``key=value ...``: integers as they are, other numbers with two decimals."""
    return " ".join(f"{k}={v}" if isinstance(v, int) else f"{k}={v:.2f}" for k, v in figures.items())


def parse_figures(line: str) -> dict[str, float]:
    """The figures of a ``key=value ...`` line (a word without ``=`` or a non-number raises ValueError)."""
    figures: dict[str, float] = {}
    for word in line.split():
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ValueError(f"not key=value: {word!r}")
        figures[key] = float(value)
    return figures


def require_finite(**figures: float) -> None:
    """Raise :class:`ImpossibleResult` naming every figure that is NaN or infinite."""
    bad = [f"{k}={v}" for k, v in figures.items() if not math.isfinite(v)]
    if bad:
        raise ImpossibleResult(f"figure(s) not finite: {', '.join(bad)}")


def summarize_closes(closes: Iterable[tuple[int | None, str]]) -> str:
    """``1008 "reason" x3, 1003 "reason" x1`` for WebSocket close codes and reasons, the most frequent
    first (one kind alone: without its count)."""
    counts: dict[tuple[int | None, str], int] = {}
    for close in closes:
        counts[close] = counts.get(close, 0) + 1
    parts = []
    for (code, reason), n in sorted(counts.items(), key=lambda item: -item[1]):
        said = "no close frame" if code is None else str(code)
        said += f' "{reason}"' if reason else ""
        parts.append(said if len(counts) == 1 else f"{said} x{n}")
    return ", ".join(parts)


def run(name: str, main: Callable[[], int | None]) -> NoReturn:
    """Run a bench's ``main``; exit 1 with one line on stderr when it raised, else with its return code."""
    try:
        code = main()
    except ImpossibleResult as exc:
        print(f"{name}: impossible result: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as exc:  # a bench failing for any reason must say why in its last line
        traceback.print_exc()
        print(f"{name}: failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr, flush=True)
        sys.exit(1)
    sys.exit(code or 0)
