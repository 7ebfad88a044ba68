"""Self-contained HTML reports of result objects.

:func:`write_report` writes one HTML file that opens without a network:
plots are inline ``data:`` images drawn with matplotlib, styles are inline,
and a Content-Security-Policy forbids script and fetches. All dataset text is
escaped (see :mod:`rlhf_diag.report.page`).

Adding a report for another result class takes one function registered on
:func:`build_page`::

    @build_page.register
    def _(res: LeaderboardResult, *, examples=None, max_chars=600, figures=True):
        page = Page("Leaderboard", subtitle=res.source)
        s = page.section("Ranking")
        s.figure(plots.interval_plot(...), alt="scores with 95% intervals")
        s.table(["model", "score", "95% CI"], rows)
        return page
"""

from __future__ import annotations

from functools import singledispatch
from pathlib import Path

from rlhf_diag.report import plots
from rlhf_diag.report.page import Page, Section

__all__ = ["Page", "Section", "build_page", "plots", "write_report"]


@singledispatch
def build_page(result, *, examples=None, max_chars: int = 600,
               figures: bool = True, **context) -> Page:
    """The report :class:`Page` of a result object.

    Parameters
    ----------
    result
        A result object with a registered page builder:
        :class:`~rlhf_diag.audit.AuditResult`,
        :class:`~rlhf_diag.leaderboard.Leaderboard`,
        :class:`~rlhf_diag.winrate.WinRateResult`,
        :class:`~rlhf_diag.kl.KLEstimates` or
        :class:`~rlhf_diag.sycophancy.flips.FlipResult`.
    examples
        Where example rows are quoted from: the
        :class:`~rlhf_diag.pairs.PairSet` (or its frame) the analysis ran on.
        None leaves the quotes out and lists row numbers only.
    max_chars
        Each quoted text is cut to this many characters.
    figures
        Draw plots (needs matplotlib; left out with a note when missing).
    **context
        What a page shows beside the result, per result class: ``source``
        (the input's name, as the page's subtitle) for a leaderboard or win
        rates; ``objective`` (:class:`~rlhf_diag.kl.KLObjective`),
        ``curve`` (:class:`~rlhf_diag.kl.RewardKLCurve`), ``estimator``,
        ``aggregation`` and ``source`` for KL estimates.
    """
    raise TypeError(f"no report page for {type(result).__name__}")


def write_report(result, path: str | Path, *, examples=None,
                 max_chars: int = 600, **context) -> Path:
    """Write ``result``'s self-contained HTML report to ``path``.

    Parameters are those of :func:`build_page`; plots are required here.

    Raises
    ------
    ImportError
        When matplotlib is missing (``pip install 'rlhf_diag[report]'``).
    """
    plots.require()
    page = build_page(result, examples=examples, max_chars=max_chars, figures=True,
                      **context)
    return page.write(path)


def _register() -> None:
    from rlhf_diag.audit import AuditResult
    from rlhf_diag.kl import KLEstimates
    from rlhf_diag.leaderboard import Leaderboard
    from rlhf_diag.report.audit import audit_page
    from rlhf_diag.report.flips import flips_page
    from rlhf_diag.report.kl import kl_page
    from rlhf_diag.report.leaderboard import leaderboard_page
    from rlhf_diag.report.winrate import winrate_page
    from rlhf_diag.sycophancy.flips import FlipResult
    from rlhf_diag.winrate import WinRateResult

    build_page.register(AuditResult, audit_page)
    build_page.register(Leaderboard, leaderboard_page)
    build_page.register(WinRateResult, winrate_page)
    build_page.register(KLEstimates, kl_page)
    build_page.register(FlipResult, flips_page)


_register()
