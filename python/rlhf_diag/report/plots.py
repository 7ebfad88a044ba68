"""Plots for reports, drawn with matplotlib; pages embed them as ``data:`` URIs.

Figures are built as :class:`matplotlib.figure.Figure` objects and saved
through their own canvas, never through ``pyplot``: no global figure state,
no backend switch in a user's notebook, and the Agg-family SVG writer works
headless. SVG keeps plots sharp at any zoom; text is drawn as paths so the
page needs no font. Output is deterministic (fixed id salt, no date).

Labels may be dataset text (model names, dataset names): mathtext parsing is
off for them, so a ``$`` in a name is drawn as is and cannot fail the plot.

The helpers take estimates and interval ends exactly as a result object holds
them and draw them; they compute no statistic. Entries whose estimate is
``None`` must be left out by the caller, which says why in the caption.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_INSTALL_HINT = "report plots need matplotlib: pip install 'rlhf_diag[report]'"

_POINT = "#0969da"
_REF = "#8c959f"


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    """Raise ImportError with the install hint when matplotlib is missing."""
    if not available():
        raise ImportError(_INSTALL_HINT)


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def to_data_uri(fig) -> str:
    """The figure as a base64 SVG ``data:`` URI."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "rlhf_diag", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _check(labels, estimates, lows, highs) -> None:
    n = len(labels)
    for name, seq in (("estimates", estimates), ("lows", lows), ("highs", highs)):
        if len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} labels")
        if any(v is None for v in seq):
            raise ValueError(f"{name} holds None: leave such entries out and say why")


def interval_plot(
    labels: Sequence[str],
    estimates: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    xlabel: str,
    reference: float | None = None,
    notes: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """A forest plot: one row per label, a point with its interval as a
    horizontal whisker, and an optional vertical reference line (0.5 for a
    share, 0 for a coefficient). ``notes`` are printed right of each row
    (e.g. the number of pairs). Returns the matplotlib Figure."""
    _check(labels, estimates, lows, highs)
    fig, ax = _figure(7.0, 0.9 + 0.32 * max(len(labels), 1))
    ys = list(range(len(labels)))[::-1]
    if reference is not None:
        ax.axvline(reference, color=_REF, linestyle="--", linewidth=1)
    ax.hlines(ys, lows, highs, color=_POINT, linewidth=2)
    ax.plot(estimates, ys, "o", color=_POINT, markersize=5)
    ax.set_yticks(ys, labels, parse_math=False)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_xlabel(xlabel, parse_math=False)
    ax.grid(axis="x", color="#eaeef2")
    if notes:
        for y, note in zip(ys, notes):
            ax.annotate(note, (1.01, y), xycoords=("axes fraction", "data"),
                        va="center", fontsize=8, color="#59636e", parse_math=False)
    if title:
        ax.set_title(title, loc="left", fontsize=10, parse_math=False)
    return fig


def rate_plot(
    labels: Sequence[str],
    estimates: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    xlabel: str,
    ylabel: str,
    reference: float | None = 0.5,
    notes: Sequence[str] | None = None,
) -> Figure:
    """A rate across ordered bins: points joined by a line, each with its
    interval as a vertical error bar, and a horizontal reference line.
    ``notes`` are printed under each bin's label (e.g. ``n=358``). Returns
    the matplotlib Figure."""
    _check(labels, estimates, lows, highs)
    fig, ax = _figure(7.0, 3.6)
    xs = list(range(len(labels)))
    if reference is not None:
        ax.axhline(reference, color=_REF, linestyle="--", linewidth=1)
    ax.vlines(xs, lows, highs, color=_POINT, linewidth=2)
    ax.plot(xs, estimates, "o-", color=_POINT, markersize=5, linewidth=1)
    ticks = [f"{lab}\n{note}" for lab, note in zip(labels, notes)] if notes else labels
    ax.set_xticks(xs, ticks, parse_math=False)
    ax.set_xlabel(xlabel, parse_math=False)
    ax.set_ylabel(ylabel, parse_math=False)
    ax.grid(axis="y", color="#eaeef2")
    ax.margins(y=0.1)
    return fig
