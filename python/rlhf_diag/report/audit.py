"""The audit's report page. Every figure is read from the
:class:`~rlhf_diag.audit.AuditResult`; example rows are looked up, by row
number, in the frame the audit ran on."""

from __future__ import annotations

import polars as pl

from rlhf_diag.audit import AuditResult
from rlhf_diag.exceptions import InputError
from rlhf_diag.pairs import PairSet
from rlhf_diag.render import _ci, _fmt, _pval
from rlhf_diag.report import plots
from rlhf_diag.report.page import Page, Section

_NEEDED = ("row", "chosen", "rejected")


def _example_frame(res: AuditResult, examples) -> pl.DataFrame | None:
    if examples is None:
        return None
    if isinstance(examples, PairSet):
        if examples.source != res.source:
            raise InputError(
                f"examples come from {examples.source!r} but the audit is of "
                f"{res.source!r}"
            )
        examples = examples.frame
    if not isinstance(examples, pl.DataFrame):
        raise InputError(
            "examples must be the PairSet or the polars frame the audit ran on, "
            f"got {type(examples).__name__}"
        )
    missing = [c for c in _NEEDED if c not in examples.columns]
    if missing:
        raise InputError(f"examples frame lacks column(s) {', '.join(missing)}")
    return examples


def _share(d: dict):
    return d.get("frac_chosen_longer", d.get("frac_chosen_more"))


def _more_fewer(d: dict):
    return (d.get("chosen_longer", d.get("chosen_more")),
            d.get("chosen_shorter", d.get("chosen_fewer")))


def _summary(page: Page, res: AuditResult) -> None:
    s = page.section("Summary")
    s.facts({
        "source": res.source,
        "format": res.format,
        "rows read": res.n_rows_read,
        "pairs audited": res.n_pairs,
        "rows skipped": "; ".join(f"{k}: {v}" for k, v in res.skipped.items())
        or "none",
        "identical pairs": res.quality["identical_pairs"]["count"],
    })
    ch = res.length["chars"]
    more, fewer = _more_fewer(ch)
    if _share(ch) is None:
        s.paragraph(f"Length (characters): {ch.get('undefined')}.")
    else:
        s.paragraph(
            f"Chosen is the longer response (characters) in {more} pairs, the "
            f"shorter in {fewer}, the same length in {ch['equal']}: share "
            f"{_fmt(_share(ch))}, Wilson 95% {_ci(ch['wilson95'])}, exact "
            f"binomial p = {_pval(ch['binomial_p'])} against 1/2."
        )
    cv = res.style_fit.get("cv")
    if cv:
        s.paragraph(
            f"A style-only Bradley-Terry fit (length and format features, no "
            f"content) predicts the chosen response with {cv['folds']}-fold held-out "
            f"accuracy {_fmt(cv['accuracy'])} (log-loss {_fmt(cv['log_loss'])})."
        )
    if res.warnings:
        s.heading("Warnings")
        s.notes(res.warnings, warning=True)


def _bias(page: Page, res: AuditResult, figures: bool) -> None:
    s = page.section("Length and format bias")
    s.paragraph(
        "Share of the pairs in which chosen has more of a feature than rejected, "
        "among pairs where the two differ; 0.5 means no preference. Whiskers are "
        "Wilson 95% intervals."
    )
    items = {**res.length, **res.features}
    shown = {k: d for k, d in items.items() if _share(d) is not None}
    flat = [k for k, d in items.items() if _share(d) is None]
    if figures and shown:
        s.figure(
            plots.interval_plot(
                list(shown),
                [_share(d) for d in shown.values()],
                [d["wilson95"][0] for d in shown.values()],
                [d["wilson95"][1] for d in shown.values()],
                xlabel="share of differing pairs in which chosen has more",
                reference=0.5,
                notes=[f"{_more_fewer(d)[0]} vs {_more_fewer(d)[1]}"
                       for d in shown.values()],
            ),
            alt="share chosen-more per feature with Wilson 95% intervals",
            caption="Right of each row: pairs where chosen has more vs fewer."
            + (f" Not shown (no pair differs): {', '.join(flat)}." if flat else ""),
        )
    rows = []
    for name, d in items.items():
        more, fewer = _more_fewer(d)
        rows.append([name, more, fewer, d["equal"], _fmt(_share(d)), _ci(d["wilson95"]),
                     _pval(d["binomial_p"]), _fmt(d["mean_diff"], 2),
                     _fmt(d.get("mean_chosen"), 2), _fmt(d.get("mean_rejected"), 2)])
    s.table(["feature", "chosen more", "chosen fewer", "equal", "share more",
             "Wilson 95%", "binomial p", "mean diff", "mean chosen", "mean rejected"],
            rows, caption="chars and words compare lengths; the rest count format "
            "features (docs/features.md).")


def _ratio(page: Page, res: AuditResult, figures: bool) -> None:
    s = page.section("Length ratio")
    s.paragraph(
        "P(the longer response is chosen) in bins of the ratio longer/shorter "
        "(characters + 1 each); pairs of equal length are in no bin. Error bars "
        "are Wilson 95% intervals."
    )
    bins = res.length_ratio_bins

    def label(e):
        hi = "∞" if e["ratio_high"] is None else f"{e['ratio_high']:g}"
        return f"{e['ratio_low']:g}–{hi}"

    full = [e for e in bins if e["p_longer_chosen"] is not None]
    empty = [label(e) for e in bins if e["p_longer_chosen"] is None]
    if figures and full:
        s.figure(
            plots.rate_plot(
                [label(e) for e in full], [e["p_longer_chosen"] for e in full],
                [e["wilson95"][0] for e in full], [e["wilson95"][1] for e in full],
                xlabel="length ratio, longer / shorter (characters + 1)",
                ylabel="P(longer chosen)", reference=0.5,
                notes=[f"n={e['n']}" for e in full],
            ),
            alt="P(longer chosen) against length ratio with Wilson 95% intervals",
            caption=(f"Empty bins not shown: {', '.join(empty)}." if empty else None),
        )
    s.table(["ratio", "pairs", "longer chosen", "P(longer chosen)", "Wilson 95%"],
            [[label(e), e["n"], e["longer_chosen"], _fmt(e["p_longer_chosen"]),
              _ci(e["wilson95"])] for e in bins])


def _style(page: Page, res: AuditResult, figures: bool) -> None:
    s = page.section("Style-only fit")
    sf = res.style_fit
    s.paragraph(f"Model: {sf['model']}. Coefficients are per root-mean-square "
                "of each normalised difference; 95% intervals from the inverse "
                "Hessian.")
    if "coefficients" not in sf:
        s.paragraph(f"Fit refused: {sf.get('undefined')}.")
        return
    coefs = sf["coefficients"]
    if figures and coefs:
        s.figure(
            plots.interval_plot(
                [c["feature"] for c in coefs], [c["coef"] for c in coefs],
                [c["ci95"][0] for c in coefs], [c["ci95"][1] for c in coefs],
                xlabel="coefficient (log-odds of chosen per RMS unit)", reference=0.0,
            ),
            alt="style coefficients with 95% intervals",
        )
    s.table(["feature", "coef", "se", "95% CI"],
            [[c["feature"], _fmt(c["coef"]), _fmt(c["se"]), _ci(c["ci95"])]
             for c in coefs])
    facts = {
        "iterations": sf["iterations"],
        "gradient norm": f"{sf['grad_norm']:.1e}",
        "converged": sf["converged"],
        "L2 penalty": sf["penalty"]["l2"],
        "separated along": ", ".join(sf["separated_features"]) or "none",
        "no variation (left out)": ", ".join(sf["dropped_no_variation"]) or "none",
    }
    if "cv" in sf:
        cv = sf["cv"]
        facts[f"{cv['folds']}-fold CV (seed {cv['seed']})"] = (
            f"accuracy {_fmt(cv['accuracy'])}, log-loss {_fmt(cv['log_loss'])}")
    s.facts(facts)


def _examples(s: Section, frame: pl.DataFrame, rows: list[int], limit: int) -> None:
    found = {r["row"]: r for r in frame.filter(pl.col("row").is_in(rows)).to_dicts()}
    for row in rows:
        r = found.get(row)
        if r is None:
            s.paragraph(f"Row {row} is not in the examples frame.", muted=True)
            continue
        s.record(f"row {row}", {"prompt (end)": r.get("prompt"), "chosen": r["chosen"],
                                "rejected": r["rejected"]},
                 limit=limit, keep={"prompt (end)": "tail"})


def _quality(page: Page, res: AuditResult, frame, limit: int) -> None:
    s = page.section("Data quality")
    rows = [[k.replace("_", " "), v["count"], v["what"], ", ".join(map(str, v["rows"]))]
            for k, v in res.quality.items()]
    rows += [[f"skipped: {reason}", n, "left out of the audit",
              ", ".join(map(str, res.skipped_rows.get(reason, [])))]
             for reason, n in res.skipped.items()]
    s.table(["finding", "count", "meaning", "first rows"], rows, left=["first rows"])
    if frame is None:
        s.paragraph("Example rows are not shown: pass the PairSet as examples= "
                    "to write_report to quote them.", muted=True)
        return
    for key, v in res.quality.items():
        if v["count"] and v["rows"]:
            s.heading(f"{key.replace('_', ' ')}: {v['count']} "
                      f"(first {len(v['rows'])} shown)")
            _examples(s, frame, v["rows"], limit)


def audit_page(res: AuditResult, *, examples=None, max_chars: int = 600,
               figures: bool = True, source: str | None = None) -> Page:
    """Build the audit report page (see :func:`rlhf_diag.report.build_page`);
    ``source`` replaces the result's own source as the subtitle."""
    frame = _example_frame(res, examples)
    figures = figures and plots.available()
    page = Page("Preference data audit", subtitle=source or res.source,
                footer=f"rlhf_diag {_version()} · every statistic is in the "
                       "--json output (docs/audit.md)")
    _summary(page, res)
    if not figures:
        page.sections[0].paragraph("Plots are left out: matplotlib is not installed "
                                   "(pip install 'rlhf_diag[report]').", muted=True)
    _bias(page, res, figures)
    _ratio(page, res, figures)
    _style(page, res, figures)
    _quality(page, res, frame, max_chars)
    return page


def _version() -> str:
    from rlhf_diag import __version__

    return __version__
