"""The leaderboard's report page: the ranking with interval whiskers, the
predicted win-rate matrix, style coefficients and the fit's warnings. Every
figure is read from the :class:`~rlhf_diag.leaderboard.Leaderboard`."""

from __future__ import annotations

from rlhf_diag.leaderboard import Leaderboard
from rlhf_diag.report import plots
from rlhf_diag.report._common import footer, interval, no_plots_note
from rlhf_diag.report.page import Page

#: The win-rate heatmap shows at most this many models (the best ranked).
HEATMAP_MAX = 30


def _rating(v, status: str = "ok") -> str | None:
    if v is None:
        return status if status in ("+inf", "-inf") else None
    return f"{v:.2f}" if abs(v) >= 10 else f"{v:.4g}"


def _summary(page: Page, lb: Leaderboard) -> None:
    s = page.section("Summary")
    tie = lb.ties
    if lb.tie_param is not None:
        name = "nu" if lb.ties == "davidson" else "kappa"
        tie += f" ({name} = {lb.tie_param:.4g}"
        if lb.tie_param_se is not None:
            tie += f", se {lb.tie_param_se:.3g}"
        if lb.tie_param_ci is not None:
            tie += f", {lb.level:.0%} interval {interval(*lb.tie_param_ci, digits=3)}"
        tie += ")"
    facts = {
        "models": len(lb.models),
        "battles": lb.n_battles,
        "tie handling": tie,
        "constraint": lb.constraint,
        "scale": "Elo (400/ln 10 per unit of log-strength, mean model 1000)"
        if lb.scale == "elo" else "log-strength",
        "intervals": f"{lb.interval}, {lb.level:.0%}"
        + (f", {lb.bootstrap_rounds} rounds, seed {lb.seed}"
           if lb.bootstrap_rounds else ""),
        "L2 prior (alpha)": lb.alpha,
        "fit": f"Newton, {lb.iterations} iterations, |gradient| = {lb.grad_norm:.2e}, "
        + ("converged" if lb.converged else "NOT converged"),
    }
    if lb.style is not None:
        facts["style control"] = ", ".join(x["feature"] for x in lb.style)
    s.facts(facts)
    unranked = [r for r in lb.rows if r["rating"] is None]
    if unranked:
        s.paragraph(
            f"{len(unranked)} model(s) have no finite rating and are left out of "
            "the plots: " + ", ".join(f"{r['model']} ({r['status']})" for r in unranked)
            + "."
        )
    if lb.warnings:
        s.heading("Warnings")
        s.notes(lb.warnings, warning=True)


def _ranking(page: Page, lb: Leaderboard, figures: bool) -> None:
    s = page.section("Ranking")
    unit = "Elo" if lb.scale == "elo" else "log-strength"
    s.paragraph(
        f"Bradley-Terry ratings ({unit}) with {lb.level:.0%} {lb.interval} intervals. "
        "'rank ub' is the best rank the interval allows: 1 + the number of models "
        "whose interval lies wholly above this one's."
    )
    shown = [r for r in lb.rows if r["rating"] is not None]
    if figures and shown:
        open_ends = [r["model"] for r in shown
                     if r["ci_low"] is None or r["ci_high"] is None]
        s.figure(
            plots.series_plot(
                [r["model"] for r in shown],
                [("rating", [r["rating"] for r in shown],
                  [r["ci_low"] for r in shown], [r["ci_high"] for r in shown])],
                xlabel=f"rating ({unit}) with {lb.level:.0%} interval",
                notes=[f"#{r['rank']}  n={r['n_battles']}" for r in shown],
            ),
            alt=f"ratings with {lb.level:.0%} intervals",
            caption="Right of each row: rank and battles played."
            + (f" Interval open on one side (no whisker there): "
               f"{', '.join(open_ends)}." if open_ends else ""),
        )
    split = any(r["component"] != 0 for r in lb.rows)
    rows = []
    for r in lb.rows:
        rows.append([
            *[r["component"]] * split,
            r["rank"], r["rank_ub"], r["model"], _rating(r["rating"], r["status"]),
            interval(r["ci_low"], r["ci_high"], digits=2),
            None if r["se"] is None else f"{r['se']:.2f}",
            r["n_battles"], f"{r['wins']:g}", f"{r['losses']:g}", f"{r['ties']:g}",
            None if r["win_rate"] is None else f"{100 * r['win_rate']:.1f}",
            r["status"],
        ])
    s.table([*["component"] * split, "rank", "rank ub", "model", "rating",
             f"{lb.level:.0%} interval", "se", "battles", "wins", "losses", "ties",
             "win %", "status"], rows,
            left=["model", "status"],
            caption="win % counts a tie as half a win; status is ok, +inf / -inf "
                    "(no finite estimate, an order only) or undefined."
                    + (" Components were fitted separately: ratings compare only "
                       "within a component." if split else ""))


def _heatmap(page: Page, lb: Leaderboard, figures: bool) -> None:
    s = page.section("Predicted win rates")
    ranked = [r["model"] for r in lb.rows if r["rank"] is not None]
    top = ranked[:HEATMAP_MAX]
    s.paragraph(
        "Predicted expected score of the row model against the column model under "
        "the fitted model: P(win) + P(tie)/2. Blank cells: the two models are in "
        "different components, or one has no order against the other."
    )
    if len(ranked) > HEATMAP_MAX:
        s.paragraph(f"Only the top {HEATMAP_MAX} of {len(ranked)} ranked models are "
                    "shown; every pair is in lb.win_rate_matrix().")
    if len(top) < 2:
        s.paragraph("Fewer than two ranked models: no matrix to show.", muted=True)
        return
    frame = lb.win_rate_matrix()
    by_model = {row["model"]: row for row in frame.iter_rows(named=True)}
    matrix = [[by_model[a][b] for b in top] for a in top]
    if figures:
        s.figure(plots.heatmap(top, matrix, colorbar="P(row beats column)"),
                 alt="predicted win-rate matrix",
                 caption="Models in rank order, best first (top row, left column).")
    if len(top) <= 12:
        s.table(["model", *top],
                [[a, *(None if v is None else f"{v:.3f}" for v in row)]
                 for a, row in zip(top, matrix)], left=["model"])


def _style(page: Page, lb: Leaderboard, figures: bool) -> None:
    if lb.style is None:
        return
    s = page.section("Style coefficients")
    s.paragraph(
        f"Style control: each coefficient is the log-odds of side a winning per "
        f"unit of the covariate (a relative to b), with {lb.level:.0%} Wald "
        "intervals from the Hessian; ratings above are net of these."
    )
    coefs = [x for x in lb.style if x["coef"] is not None]
    if figures and coefs:
        s.figure(
            plots.series_plot(
                [x["feature"] for x in coefs],
                [("coefficient", [x["coef"] for x in coefs],
                  [x["ci_low"] for x in coefs], [x["ci_high"] for x in coefs])],
                xlabel="coefficient (log-odds per unit)", reference=0.0,
            ),
            alt=f"style coefficients with {lb.level:.0%} intervals",
        )
    dropped = getattr(lb, "style_dropped", None)
    if dropped:
        s.paragraph("Left out (never varies across the battles): "
                    + ", ".join(dropped) + ".")
    s.table(["feature", "coefficient", "se", f"{lb.level:.0%} interval"],
            [[x["feature"], None if x["coef"] is None else f"{x['coef']:.4f}",
              None if x["se"] is None else f"{x['se']:.4f}",
              interval(x["ci_low"], x["ci_high"], digits=4)] for x in lb.style],
            left=["feature"])


def leaderboard_page(lb: Leaderboard, *, examples=None, max_chars: int = 600,
                     figures: bool = True, source: str | None = None) -> Page:
    """Build the leaderboard report page (see
    :func:`rlhf_diag.report.build_page`); ``source`` names the battles."""
    figures = figures and plots.available()
    page = Page("Leaderboard from pairwise battles", subtitle=source,
                footer=footer("docs/leaderboard.md"))
    _summary(page, lb)
    no_plots_note(page, figures)
    _ranking(page, lb, figures)
    _heatmap(page, lb, figures)
    _style(page, lb, figures)
    return page
