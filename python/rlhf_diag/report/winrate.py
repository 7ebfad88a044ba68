"""The win-rate report page: raw against length-controlled win rates per
model, with standard errors and counts. Every figure is read from the
:class:`~rlhf_diag.winrate.WinRateResult`."""

from __future__ import annotations

from rlhf_diag.report import plots
from rlhf_diag.report._common import footer, interval, no_plots_note
from rlhf_diag.report.page import Page
from rlhf_diag.winrate import WinRateResult

#: Normal quantile of the 95% intervals drawn from standard errors.
Z95 = 1.959963984540054


def _ci(value, se):
    if value is None or se is None:
        return None, None
    return value - Z95 * se, value + Z95 * se


def _order(res: WinRateResult) -> list:
    """Models best first: by LC where every model has one, else by win rate."""
    rows = list(res.models.values())
    if all(r.length_controlled_winrate is not None for r in rows):
        return sorted(rows, key=lambda r: -r.length_controlled_winrate)
    return sorted(rows, key=lambda r: -r.win_rate)


def _summary(page: Page, res: WinRateResult) -> None:
    s = page.section("Summary")
    o = res.options
    rows = list(res.models.values())
    facts = {
        "baseline": res.baseline,
        "models": len(rows),
        "annotations used": sum(r.n_total for r in rows),
        "null preferences (left out)": sum(r.n_null for r in rows),
        "length control": "on" if o.get("length_controlled") else "off",
    }
    if o.get("length_controlled"):
        facts["instruction difficulty"] = o.get("difficulty")
        facts["alignment"] = o.get("alignment")
        facts["gamed-baseline anchor"] = (
            "none" if o.get("anchor_slope") is None
            else f"slope {o['anchor_slope']:g}, weight {o['anchor_weight']:g}")
        no_lc = [r.model for r in rows if r.length_controlled_winrate is None]
        facts["models without LC"] = ", ".join(no_lc) or "none"
    s.facts(facts)
    if res.notes:
        s.heading("Notes and warnings")
        s.notes(res.notes, warning=True)


def _rates(page: Page, res: WinRateResult, figures: bool) -> None:
    s = page.section("Raw and length-controlled win rates")
    s.paragraph(
        f"Win rate against {res.baseline} (percent): the weighted win rate "
        "100·mean(preference − 1) with its standard error, and the "
        "length-controlled (LC) win rate of Dubois et al. (2024). Whiskers are "
        "±1.96 standard errors: for the raw rate its standard error over "
        "annotations; for LC the delta-method standard error from the GLM's "
        "covariance (difficulties treated as known)."
    )
    order = _order(res)
    if figures and order:
        lc = [r.length_controlled_winrate for r in order]
        lc_ci = [_ci(r.length_controlled_winrate, r.lc_delta_se) for r in order]
        raw_ci = [_ci(r.win_rate, r.standard_error) for r in order]
        series = [("raw win rate", [r.win_rate for r in order],
                   [c[0] for c in raw_ci], [c[1] for c in raw_ci])]
        if any(v is not None for v in lc):
            series.append(("length-controlled", lc, [c[0] for c in lc_ci],
                           [c[1] for c in lc_ci]))
        s.figure(
            plots.series_plot([r.model for r in order], series,
                              xlabel=f"win rate against {plots.short(res.baseline)} (%)",
                              reference=50.0,
                              notes=[f"n={r.n_total}" for r in order]),
            alt="raw and length-controlled win rates with intervals",
            caption="Right of each row: annotations used. Dashed line: 50%, a tie "
                    "with the baseline.",
        )
    rows = []
    for r in order:
        lo, hi = _ci(r.win_rate, r.standard_error)
        llo, lhi = _ci(r.length_controlled_winrate, r.lc_delta_se)
        rows.append([
            r.model,
            None if r.length_controlled_winrate is None
            else f"{r.length_controlled_winrate:.2f}",
            None if r.lc_delta_se is None else f"{r.lc_delta_se:.2f}",
            interval(llo, lhi, 2) if llo is not None else None,
            f"{r.win_rate:.2f}",
            None if r.standard_error is None else f"{r.standard_error:.2f}",
            interval(lo, hi, 2) if lo is not None else None,
            f"{r.discrete_win_rate:.2f}",
            r.n_wins, r.n_wins_base, r.n_draws, r.n_total, r.n_null,
            f"{r.avg_length:.0f}",
            r.lc_reason or "",
        ])
    columns = ["model", "LC", "LC se", "LC 95%", "win rate", "se", "95%", "discrete",
               "wins", "baseline wins", "draws", "n", "null", "mean length", "LC note"]
    if not any(r.lc_reason for r in order):
        columns, rows = columns[:-1], [row[:-1] for row in rows]
    s.table(columns, rows, left=["model", "LC note"],
            caption="Percentages. discrete: a preference above 1.5 wins, exactly "
                    "1.5 is half. null: annotations with no preference, left out. "
                    "mean length: characters of the model's outputs.")


def winrate_page(res: WinRateResult, *, examples=None, max_chars: int = 600,
                 figures: bool = True, source: str | None = None) -> Page:
    """Build the win-rate report page (see :func:`rlhf_diag.report.build_page`);
    ``source`` names the annotation files."""
    figures = figures and plots.available()
    page = Page("AlpacaEval win rates", subtitle=source,
                footer=footer("docs/winrate.md"))
    _summary(page, res)
    no_plots_note(page, figures)
    _rates(page, res, figures)
    return page
