"""Text from files made safe for a Markdown table cell or heading.

Labels, rewards, time stamps and error reasons in reports come from result files, progress reports
and suite files that anyone may have written. Written raw, a ``|`` splits a cell, a newline ends the
row (and can start a heading or a new table), and ``<``/``>`` open HTML or a comment that hides the
rest of the page. :func:`md_cell` escapes them so the text shows as written.
"""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def md_cell(value: Any) -> str:
    """``str(value)`` for one Markdown table cell: ``|`` and ``\\`` escaped, ``<``/``>``/``&`` as entities, line breaks as spaces."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _CONTROL.sub(" ", text)


def metric_cell(value: float) -> str:
    """A metric for a table: 4 decimals, or 4 significant digits in scientific notation beyond ±1e5.

    A run that blows up ends with a finite but astronomical perplexity (e.g. 1.8e204); written with
    4 decimals it is a 200-digit number that breaks the table's layout.
    """
    return f"{value:.4f}" if abs(value) < 1e5 or value != value else f"{value:.3e}"


__all__ = ["md_cell", "metric_cell"]
