"""Progress bars for every long step of medgan, made in one place (``progress_bar``).

On a terminal (or in a notebook) they are tqdm's bars, redrawn in place. Where stderr is not a terminal (a batch
job, a SLURM log, ``2> file``), a redraw would append carriage returns to the file; there each bar writes a plain
line instead, at most every ``LINE_INTERVAL_S`` seconds, and a last one when it ends::

    train: 250/2000 step (12%), 3.1 step/s, elapsed 1:20, eta 9:24, d=0.512, g=1.234
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as std_tqdm

LINE_INTERVAL_S = 30.0  # seconds between two lines of one bar in a log


def progress_bar(iterable: Iterable | None = None, **options: Any) -> std_tqdm:
    """A tqdm bar (same arguments and methods) on a terminal or in a notebook; elsewhere a ``LineProgress``.

    Args:
        iterable: what to iterate over (or None, with ``total`` and ``update``).
        **options: tqdm's keyword arguments (``total``, ``desc``, ``unit``, ``disable``, ``leave``, ``file``...).
    """
    stream = options.get("file") or sys.stderr
    if options.get("disable") or _in_notebook() or _is_terminal(stream):
        return auto_tqdm(iterable, **options)
    return LineProgress(iterable, **options)


def write(message: str) -> None:
    """Prints a line without breaking the bars on screen (tqdm's ``write``)."""
    std_tqdm.write(message)


class LineProgress(std_tqdm):
    """A tqdm bar for logs: no bar, no carriage return, no cursor movement; one line at most every
    ``line_interval`` seconds while it runs, and one when it closes (always when ``leave``, else only if it wrote
    before, so that short inner bars add nothing to the log).

    Args:
        *args, **kwargs: tqdm's; ``line_interval`` (seconds, default ``LINE_INTERVAL_S``) is its own.
    """

    def __init__(self, *args: Any, line_interval: float = LINE_INTERVAL_S, **kwargs: Any) -> None:
        self.line_interval = line_interval
        self._last_line: float | None = None
        self._started = time.time()  # tqdm's clock (start_t is set after its first display)
        kwargs.update(ascii=True, dynamic_ncols=False, mininterval=min(line_interval, 1.0))
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is not None:  # tqdm clearing the bar: there is nothing to erase in a log
            return True
        now = self._time()
        if now - (self._last_line if self._last_line is not None else self._started) >= self.line_interval:
            self._write_line(now)
        return True

    def clear(self, nolock: bool = False) -> None:
        """Nothing to erase (tqdm clears bars around ``write``)."""

    def moveto(self, n: int) -> None:
        """Lines need no cursor movement (tqdm moves it for nested bars)."""

    def close(self) -> None:
        if self.disable:
            return
        if self.leave or self._last_line is not None:
            self._write_line(self._time())
        self.disable = True
        self._decr_instances(self)

    def line(self) -> str:
        """The current state in one line: ``desc: n/total unit (p%), rate, elapsed, eta, postfix``."""
        values = self.format_dict
        n, total, unit, elapsed = values["n"], values["total"], values["unit"], values["elapsed"]
        done = n - values.get("initial", 0)
        rate = done / elapsed if elapsed > 0 and done > 0 else None
        parts = [f"{n}/{_number(total)} {unit} ({100 * n / total:.0f}%)" if total else f"{n} {unit}"]
        if rate is not None:
            parts.append(f"{_number(rate) if rate >= 100 else f'{rate:.3g}'} {unit}/s")
        parts.append(f"elapsed {self.format_interval(elapsed)}")
        if rate is not None and total and n < total:
            parts.append(f"eta {self.format_interval((total - n) / rate)}")
        if values.get("postfix"):
            parts.append(str(values["postfix"]))
        prefix = f"{values['prefix']}: " if values.get("prefix") else ""
        return prefix + ", ".join(parts)

    def _write_line(self, now: float) -> None:
        self.fp.write(self.line() + "\n")
        self.fp.flush()
        self._last_line = now


def _number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) or value >= 100 else f"{value:g}"


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(callable(isatty) and isatty())
    except ValueError:  # a closed stream
        return False


def _in_notebook() -> bool:
    """True in a Jupyter kernel, where tqdm.auto draws a widget (its stderr is no terminal there)."""
    return any(cls.__module__ == "tqdm.notebook" for cls in auto_tqdm.__mro__)
