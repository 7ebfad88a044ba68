"""The KL report page: per-sequence distributions of every estimator, the
batch summary with intervals, clamping counts, and reward against KL. Every
figure is read from :class:`~rlhf_diag.kl.KLEstimates` and, when given, the
:class:`~rlhf_diag.kl.KLObjective` and :class:`~rlhf_diag.kl.RewardKLCurve`
computed from it."""

from __future__ import annotations

from rlhf_diag.exceptions import UndefinedStatisticError
from rlhf_diag.kl import KLEstimates, KLObjective, RewardKLCurve
from rlhf_diag.report import plots
from rlhf_diag.report._common import footer, no_plots_note
from rlhf_diag.report.page import Page

Z95 = 1.959963984540054


def _g(v, digits: int = 6) -> str | None:
    return None if v is None else f"{v:.{digits}g}"


def _ci(mean, se):
    if se is None:
        return "—"
    return f"[{mean - Z95 * se:.6g}, {mean + Z95 * se:.6g}]"


def _summary(page: Page, est: KLEstimates) -> None:
    s = page.section("Summary")
    facts = {
        "sequences": est.n_seqs,
        "selected tokens": int(est.n_tokens.sum()),
        "token selection": est.selection,
        "tokens per sequence": (f"{int(est.n_tokens.min())}–{int(est.n_tokens.max())}"
                                if est.n_seqs else "—"),
        "clamp": "none" if est.clamp is None
        else f"[{est.clamp[0]:g}, {est.clamp[1]:g}] on each per-token value",
    }
    if est.n_seqs:
        neg = int((est.sums["k1"] < 0).sum())
        facts["k1 negative"] = f"{neg} of {est.n_seqs} sequences ({neg / est.n_seqs:.1%})"
    facts["rewards"] = "given" if est.reward is not None else "not given"
    s.facts(facts)
    if est.clamp is not None:
        s.table(["estimator", "tokens changed by the clamp"],
                [[e, est.clamped.get(e, 0)] for e in est.sums],
                caption="Clamping counts per estimator.")
    notes = []
    if est.n_seqs and est.sums["k1"].mean() < 0:
        notes.append(
            f"The batch mean of k1 is negative ({est.sums['k1'].mean():.6g} per "
            "sequence): KL cannot be, so the tokens were not sampled from the policy, "
            "or the log-probs and the mask are misaligned.")
    empty = int((est.n_tokens == 0).sum())
    if empty:
        notes.append(f"{empty} sequence(s) have no selected token: per-token means "
                     "are undefined for them.")
    if notes:
        s.heading("Warnings")
        s.notes(notes, warning=True)


def _estimates(page: Page, est: KLEstimates, figures: bool) -> None:
    s = page.section("Estimators")
    s.paragraph(
        "Per-sequence sums over the selected tokens, summarised over sequences: "
        "mean with its standard error and a normal 95% interval (mean ± 1.96 se), "
        "min and max. Token mean: all sums over all selected tokens. k1 and k3 are "
        "unbiased for KL(π‖π_ref); k2 (equal to mse) and abs are biased upward."
    )
    total = int(est.n_tokens.sum())
    rows = []
    for e in est.estimators:
        d = est.describe(e)
        rows.append([e, _g(d["mean"]), _g(d["se"]), _ci(d["mean"], d["se"]),
                     _g(d["min"]), _g(d["max"]),
                     _g(est.token_mean(e)) if total else None])
    s.table(["estimator", "mean", "se", "95% interval", "min", "max", "token mean"],
            rows, left=["estimator"])
    if figures and est.n_seqs:
        s.figure(
            plots.histograms([(e, est.values(e)) for e in est.estimators],
                             xlabel="per-sequence sum"),
            alt="histograms of per-sequence KL per estimator",
            caption="One panel per estimator, per-sequence sums; dashed line: the "
                    "mean over sequences.",
        )


def _reward(page: Page, est: KLEstimates, figures: bool, estimator: str,
            aggregation: str, objective: KLObjective | None,
            curve: RewardKLCurve | None) -> None:
    if est.reward is None:
        return
    s = page.section("Reward against KL")
    try:
        kl = est.values(estimator, aggregation)
    except UndefinedStatisticError as exc:
        s.paragraph(f"Not drawn: {exc}.")
        return
    s.paragraph(
        f"Each point is a sequence: its reward against its KL ({estimator}, "
        f"per-sequence {aggregation})."
        + (" Points are coloured by step." if est.step is not None else "")
        + (f" Black squares are the means per {curve.by} with ±1 standard error, "
           "joined in order." if curve is not None else "")
    )
    if figures and est.n_seqs:
        means = None
        if curve is not None:
            means = [(r["kl_mean"], r["reward_mean"], r["kl_se"], r["reward_se"])
                     for r in curve.table.iter_rows(named=True)]
        groups = None
        if est.step is not None:
            groups = [str(v) for v in est.step]
        s.figure(plots.scatter(kl, est.reward, xlabel=f"KL ({estimator}, {aggregation})",
                               ylabel="reward", groups=groups, group_title="step",
                               means=means),
                 alt="reward against KL per sequence")
    if curve is not None:
        s.heading(f"Means per {curve.by}")
        s.table(["level", "sequences", "mean reward", "reward se", "mean KL", "KL se"],
                [[str(r["level"]), r["n"], _g(r["reward_mean"]), _g(r["reward_se"]),
                  _g(r["kl_mean"]), _g(r["kl_se"])]
                 for r in curve.table.iter_rows(named=True)],
                caption="— : one sequence at that level, no standard error."
                if curve.table["n"].min() < 2 else None)
    if objective is not None:
        d = objective.to_dict()
        s.heading(f"Objective r − {objective.beta:g}·KL")
        s.facts({
            "KL in the penalty": f"{objective.estimator}, per-sequence "
                                 f"{objective.aggregation}",
            "mean objective": f"{d['mean']:.6g}"
            + ("" if d["se"] is None else
               f" (se {d['se']:.3g}, 95% {_ci(d['mean'], d['se'])})"),
            "mean reward": f"{d['mean_reward']:.6g}",
            "mean KL": f"{d['mean_kl']:.6g}",
            "mean penalty": f"{d['mean_penalty']:.6g}",
            "penalty is a bonus on": f"{objective.share_bonus:.1%} of sequences",
        })
        if d["se_reason"]:
            s.paragraph(f"No standard error: {d['se_reason']}.", muted=True)


def kl_page(est: KLEstimates, *, examples=None, max_chars: int = 600,
            figures: bool = True, source: str | None = None,
            objective: KLObjective | None = None, curve: RewardKLCurve | None = None,
            estimator: str | None = None, aggregation: str | None = None) -> Page:
    """Build the KL report page (see :func:`rlhf_diag.report.build_page`).

    The reward-against-KL plot uses ``estimator`` and ``aggregation``
    (default: those of ``objective`` or ``curve``, else k1 and sum)."""
    figures = figures and plots.available()
    ref = objective or curve
    estimator = estimator or (ref.estimator if ref else "k1")
    aggregation = aggregation or (ref.aggregation if ref else "sum")
    page = Page("KL diagnostics", subtitle=source, footer=footer("docs/kl.md"))
    _summary(page, est)
    no_plots_note(page, figures)
    _estimates(page, est, figures)
    _reward(page, est, figures, estimator, aggregation, objective, curve)
    return page
