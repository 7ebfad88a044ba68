"""The flips report page: flip, admits-mistake and apology rates per dataset
(and per model and template where there are several) with Wilson intervals
and counts, comparisons, skipped and unparsed rows, and example replies.
Every figure is read from the :class:`~rlhf_diag.sycophancy.flips.FlipResult`;
replies are quoted escaped (they are model output, hostile as any dataset
text)."""

from __future__ import annotations

from rlhf_diag.report import plots
from rlhf_diag.report._common import footer, no_plots_note
from rlhf_diag.report.page import Page, Section
from rlhf_diag.sycophancy.flips import FlipResult

#: Example replies quoted per kind (flipped, unparsed).
N_EXAMPLES = 5

_RATES = (
    ("flip_rate", "flip rate (correct → wrong)"),
    ("not_kept_rate", "not kept (c→w or unparsed)"),
    ("wrong_to_correct_rate", "wrong → correct"),
    ("any_change_rate", "any change"),
    ("admits_mistake_rate", "admits a mistake"),
    ("apology_rate", "apologises"),
)
_PLOTTED = (("flip_rate", "flip rate"), ("admits_mistake_rate", "admits a mistake"),
            ("apology_rate", "apologises"))


def _rate_cells(d: dict | None) -> list:
    if d is None or "undefined" in d:
        return [None, None, None]
    lo, hi = d["wilson95"]
    return [f"{d['rate']:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{d['k']}/{d['n']}"]


def _summary(page: Page, res: FlipResult) -> None:
    s = page.section("Summary")
    o = res.overall
    s.facts({
        "files": len(res.sources),
        "items scored": o["n_items"],
        "first answer correct": o["n_initially_correct"],
        "first answer wrong": o["n_initially_wrong"],
        "first answer unread": o["n_first_unparsed"],
        "unparsed (first answer or reply)": o["outcomes"]["unparsed"],
        "rows skipped": "; ".join(f"{k}: {v}" for k, v in res.skipped.items())
        or "none",
    })
    fr = o["flip_rate"]
    if "undefined" not in fr:
        lo, hi = fr["wilson95"]
        s.paragraph(
            f"Of {fr['n']} items answered correctly first whose reply could be read, "
            f"{fr['k']} switched to a wrong answer after the pushback: flip rate "
            f"{fr['rate']:.3f}, Wilson 95% [{lo:.3f}, {hi:.3f}]. Unparsed replies "
            "are left out of this denominator; 'not kept' counts them as not kept, "
            "so the two rates bracket the answer."
        )
    s.heading("Files")
    s.notes(res.sources)
    warn = [f"skipped {n} row(s): {reason}"
            + (f" (e.g. {', '.join(map(str, res.skipped_rows[reason][:3]))})"
               if res.skipped_rows.get(reason) else "")
            for reason, n in res.skipped.items()]
    if warn:
        s.heading("Warnings")
        s.notes(warn, warning=True)


def _group_tables(s: Section, rows: dict) -> None:
    counts = []
    for name, r in rows.items():
        if "undefined" in r:
            counts.append([name, None, None, None, None, None, None, r["undefined"]])
            continue
        oc = r["outcomes"]
        counts.append([name, r["n_items"], r["n_initially_correct"],
                       oc["kept_correct"], oc["correct_to_wrong"],
                       oc["wrong_to_correct"], oc["unparsed"], ""])
    s.table(["group", "items", "first correct", "kept", "c→w", "w→c", "unparsed",
             "note"], counts, left=["group", "note"], caption="Outcome counts.")
    table, nowhere = [], []
    for key, label in _RATES:
        ds = [r.get(key) for r in rows.values()]
        if all(d is None or "undefined" in d for d in ds) and len(rows) > 1:
            nowhere.append(label)
            continue
        for name, r in rows.items():
            d = r.get(key)
            why = d["undefined"] if isinstance(d, dict) and "undefined" in d else (
                r.get("undefined", ""))
            table.append([label, name, *_rate_cells(d), why])
    s.table(["rate", "group", "estimate", "Wilson 95%", "k/n", "undefined because"],
            table, left=["rate", "group", "undefined because"],
            caption="Each rate with its Wilson 95% interval and its count k of n.")
    if nowhere:
        s.paragraph(f"Undefined in every group (no eligible item): "
                    f"{', '.join(nowhere)}.", muted=True)


def _by_group(page: Page, res: FlipResult, grouping: str, figures: bool) -> None:
    rows = res.groups.get(grouping, {})
    if grouping != "dataset" and len(rows) < 2:
        return
    s = page.section(f"By {grouping}")
    if grouping == "dataset":
        s.paragraph(
            "Flip rate: of the items answered correctly first with a read reply, the "
            "share that settled on a wrong answer after the pushback. Admits a "
            "mistake / apologises: of the items with a reply. Whiskers are Wilson "
            "95% intervals.")
    plotted = {name: r for name, r in rows.items() if "undefined" not in r}
    if figures and plotted:
        names = list(plotted)
        series, missing = [], []
        for key, label in _PLOTTED:
            est, lo, hi = [], [], []
            for name in names:
                d = plotted[name].get(key)
                if d is None or "undefined" in d:
                    est.append(None), lo.append(None), hi.append(None)
                    missing.append(f"{label} for {name}")
                else:
                    est.append(d["rate"]), lo.append(d["wilson95"][0])
                    hi.append(d["wilson95"][1])
            series.append((label, est, lo, hi))
        n_note = [f"n={plotted[n]['flip_rate']['n']}"
                  if "undefined" not in plotted[n]["flip_rate"] else "" for n in names]
        left_out = [n for n in rows if n not in plotted]
        cap = "Right of each row: items in the flip rate's denominator."
        if missing:
            cap += f" Undefined, not drawn: {', '.join(missing)}."
        if left_out:
            cap += f" No rate at all: {', '.join(left_out)}."
        s.figure(plots.series_plot(names, series, xlabel="rate", notes=n_note),
                 alt=f"flip and apology rates by {grouping} with Wilson intervals",
                 caption=cap)
    _group_tables(s, rows)


def _comparisons(page: Page, res: FlipResult) -> None:
    if not res.comparisons and not res.comparisons_undefined:
        return
    s = page.section("Comparisons")
    if res.comparisons_undefined:
        s.paragraph(res.comparisons_undefined)
    rows = []
    for c in res.comparisons:
        test = {"mcnemar_exact": "McNemar exact (paired)",
                "two_proportion": "two-proportion z"}.get(c["test"], c["test"])
        n = c.get("n_pairs") or f"{c.get('n_a')} / {c.get('n_b')}"
        rows.append([c["by"], c["a"], c["b"], test, n,
                     None if c["rate_a"] is None else f"{c['rate_a']:.3f}",
                     None if c["rate_b"] is None else f"{c['rate_b']:.3f}",
                     None if c["difference"] is None else f"{c['difference']:+.3f}",
                     None if c["p_value"] is None else f"{c['p_value']:.2g}",
                     c.get("undefined", "")])
    if rows:
        s.table(["by", "a", "b", "test", "pairs / n", "flip rate a", "flip rate b",
                 "a − b", "p", "note"], rows, left=["by", "a", "b", "test", "note"])


def _examples(page: Page, res: FlipResult, limit: int) -> None:
    s = page.section("Example replies")
    s.paragraph("Replies to the pushback, quoted as text (cut to "
                f"{limit} characters). At most {N_EXAMPLES} of each kind.", muted=True)
    flipped = [it for it in res.items if it.outcome == "correct_to_wrong"]
    unparsed = res.unparsed()
    for title, items in ((f"Flipped (correct → wrong): {len(flipped)}", flipped),
                         (f"Unparsed: {len(unparsed)}", unparsed)):
        s.heading(title + (f" (first {N_EXAMPLES} shown)" if len(items) > N_EXAMPLES
                           else ""))
        if not items:
            s.paragraph("none", muted=True)
        for it in items[:N_EXAMPLES]:
            head = (f"{it.dataset} · row {it.row} · id {it.id} · gold {it.gold}, "
                    f"first {it.first_answer or '—'}, final {it.final_answer or '—'}")
            fields = {"reply to the pushback": it.reply}
            if it.unparsed_reason:
                fields = {"why unparsed": it.unparsed_reason, **fields}
            s.record(head, fields, limit=limit)
    if unparsed:
        s.heading("Every unparsed item")
        s.table(["dataset", "row", "id", "reason"],
                [[it.dataset, it.row, str(it.id), it.unparsed_reason or ""]
                 for it in unparsed], left=["dataset", "id", "reason"])


def flips_page(res: FlipResult, *, examples=None, max_chars: int = 600,
               figures: bool = True) -> Page:
    """Build the flips report page (see :func:`rlhf_diag.report.build_page`).
    Replies are quoted from the result's items; ``examples`` is not used."""
    figures = figures and plots.available()
    subtitle = ", ".join(res.sources) if len(res.sources) <= 3 else (
        f"{len(res.sources)} files")
    page = Page("Answer flips under pushback", subtitle=subtitle,
                footer=footer("docs/sycophancy.md"))
    _summary(page, res)
    no_plots_note(page, figures)
    for g in ("dataset", "model", "template"):
        _by_group(page, res, g, figures)
    _comparisons(page, res)
    _examples(page, res, max_chars)
    return page
