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


_SERIES = ("#0969da", "#cf222e", "#1a7f37", "#8250df")
#: Labels longer than this are cut in plots (tables beside them hold them whole).
LABEL_MAX = 40


def short(label, limit: int = LABEL_MAX) -> str:
    """``label`` as text, cut to ``limit`` characters with an ellipsis, on
    one line: a long model name must not squeeze the plot to nothing."""
    text = " ".join(str(label).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def series_plot(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None], Sequence[float | None],
                           Sequence[float | None]]],
    *,
    xlabel: str,
    reference: float | None = None,
    notes: Sequence[str] | None = None,
) -> Figure:
    """A forest plot of several estimates per label: one row per label, each
    series a point with its interval as a horizontal whisker, drawn a little
    above or below the row and named in a legend. ``series`` holds
    ``(name, estimates, lows, highs)``; an entry whose estimate is None is
    not drawn (the caller says why), an interval end that is None is drawn
    as no whisker on that side. Returns the matplotlib Figure."""
    n = len(labels)
    for name, est, lo, hi in series:
        for what, seq in (("estimates", est), ("lows", lo), ("highs", hi)):
            if len(seq) != n:
                raise ValueError(f"{name}: {what} has {len(seq)} entries for {n} labels")
    fig, ax = _figure(7.5, 1.2 + 0.36 * max(n, 1))
    ys = list(range(n))[::-1]
    if reference is not None:
        ax.axvline(reference, color=_REF, linestyle="--", linewidth=1)
    k = len(series)
    step = 0.6 / max(k, 1)
    for j, (name, est, lo, hi) in enumerate(series):
        colour = _SERIES[j % len(_SERIES)]
        off = (k - 1) * step / 2 - j * step
        pts = [(y + off, e) for y, e in zip(ys, est) if e is not None]
        segs = [(y + off, a if a is not None else e, b if b is not None else e)
                for y, e, a, b in zip(ys, est, lo, hi) if e is not None]
        if segs:
            ax.hlines([s[0] for s in segs], [s[1] for s in segs], [s[2] for s in segs],
                      color=colour, linewidth=2)
        ax.plot([p[1] for p in pts], [p[0] for p in pts], "o", color=colour,
                markersize=4.5, label=name)
    ax.set_yticks(ys, [short(x) for x in labels], parse_math=False)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(xlabel, parse_math=False)
    ax.grid(axis="x", color="#eaeef2")
    if k > 1:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=k,
                  frameon=False, fontsize=9)
    if notes:
        for y, note in zip(ys, notes):
            ax.annotate(note, (1.01, y), xycoords=("axes fraction", "data"),
                        va="center", fontsize=8, color="#59636e", parse_math=False)
    return fig


def heatmap(
    labels: Sequence[str],
    matrix: Sequence[Sequence[float | None]],
    *,
    colorbar: str,
    annotate: bool | None = None,
) -> Figure:
    """A square matrix of values in [0, 1] (row label against column label),
    cells that are None left blank; values are printed in the cells when
    ``annotate`` (default: at most 15 labels). Returns the matplotlib
    Figure."""
    import numpy as np

    n = len(labels)
    if len(matrix) != n or any(len(row) != n for row in matrix):
        raise ValueError(f"matrix must be {n}x{n} for {n} labels")
    values = np.array([[np.nan if v is None else float(v) for v in row]
                       for row in matrix], dtype=float)
    side = min(max(5.0, 2.5 + 0.3 * n), 12.0)
    fig, ax = _figure(side + 1.4, side)
    shown = np.ma.masked_invalid(values)
    im = ax.imshow(shown, cmap="RdBu", vmin=0.0, vmax=1.0, interpolation="nearest")
    names = [short(x) for x in labels]
    ax.set_xticks(range(n), names, rotation=60, ha="right", rotation_mode="anchor",
                  fontsize=8 if n > 15 else 9, parse_math=False)
    ax.set_yticks(range(n), names, fontsize=8 if n > 15 else 9, parse_math=False)
    ax.set_xlabel("column model", parse_math=False)
    ax.set_ylabel("row model", parse_math=False)
    if annotate if annotate is not None else n <= 15:
        for i in range(n):
            for j in range(n):
                if not np.isnan(values[i, j]):
                    v = values[i, j]
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if abs(v - 0.5) > 0.3 else "#1f2328",
                            parse_math=False)
    cb = fig.colorbar(im, ax=ax, shrink=0.9 if n > 6 else 1.0)
    cb.set_label(colorbar, parse_math=False)
    return fig


def histograms(
    panels: Sequence[tuple[str, Sequence[float]]],
    *,
    xlabel: str,
    bins: int = 40,
) -> Figure:
    """One histogram per ``(title, values)`` panel in a grid of up to three
    columns, each with its own x range, and a dashed line at the panel's
    mean. Returns the matplotlib Figure."""
    import numpy as np

    k = len(panels)
    if k == 0:
        raise ValueError("no panels to draw")
    cols = min(3, k)
    rows = (k + cols - 1) // cols
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    fig = Figure(figsize=(3.2 * cols + 0.6, 2.5 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (title, values) in zip(axes.flat, panels):
        v = np.asarray(values, dtype=float)
        ax.hist(v, bins=bins, color=_POINT, alpha=0.85)
        ax.axvline(float(v.mean()), color="#1f2328", linestyle="--", linewidth=1)
        ax.set_title(short(title), loc="left", fontsize=10, parse_math=False)
        ax.set_xlabel(xlabel, fontsize=8, parse_math=False)
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", color="#eaeef2")
    for ax in list(axes.flat)[k:]:
        ax.set_visible(False)
    return fig


def scatter(
    x: Sequence[float],
    y: Sequence[float],
    *,
    xlabel: str,
    ylabel: str,
    groups: Sequence[str] | None = None,
    group_title: str | None = None,
    means: Sequence[tuple[float, float, float | None, float | None]] | None = None,
) -> Figure:
    """Points ``(x, y)``, coloured by ``groups`` when given (a legend names
    each group, at most 8; more groups share one colour map), and optional
    ``means`` drawn on top as ``(x, y, x_err, y_err)`` crosses joined in
    order. Returns the matplotlib Figure."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x has {x.size} values, y has {y.size}")
    fig, ax = _figure(7.0, 4.6)
    alpha = 0.55 if x.size < 2000 else 0.25
    if groups is not None:
        levels = list(dict.fromkeys(groups))
        g = np.asarray(groups)
        if len(levels) <= 8:
            for j, level in enumerate(levels):
                sel = g == level
                ax.scatter(x[sel], y[sel], s=10, alpha=alpha,
                           color=f"C{j}", label=short(level), linewidths=0)
            ax.legend(fontsize=8, frameon=False, markerscale=1.5, title=group_title,
                      title_fontsize=8, loc="best")
        else:
            index = {lv: i for i, lv in enumerate(levels)}
            sc = ax.scatter(x, y, s=10, alpha=alpha, c=[index[v] for v in groups],
                            cmap="viridis", linewidths=0)
            fig.colorbar(sc, ax=ax, label=f"{group_title or 'level'} (in order)")
    else:
        ax.scatter(x, y, s=10, alpha=alpha, color=_POINT, linewidths=0)
    if means:
        mx = [m[0] for m in means]
        my = [m[1] for m in means]
        ax.plot(mx, my, "-", color="#1f2328", linewidth=1)
        ax.errorbar(mx, my, xerr=[m[2] or 0.0 for m in means],
                    yerr=[m[3] or 0.0 for m in means], fmt="s", color="#1f2328",
                    markersize=5, capsize=3, linewidth=1.2)
    ax.set_xlabel(xlabel, parse_math=False)
    ax.set_ylabel(ylabel, parse_math=False)
    ax.grid(color="#eaeef2")
    return fig
