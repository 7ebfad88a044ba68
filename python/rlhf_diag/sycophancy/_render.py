"""Text views of a :class:`~rlhf_diag.sycophancy.flips.FlipResult`
and of the reward-model probe's result. Nothing here computes a statistic:
every figure is read from the result."""

from __future__ import annotations


from rich.console import Console
from rich.table import Table

from rlhf_diag.render import to_text

_RATES = (
    ("flip_rate", "flip (c→w)"),
    ("not_kept_rate", "not kept"),
    ("wrong_to_correct_rate", "w→c rate"),
    ("any_change_rate", "any change"),
    ("admits_mistake_rate", "admits mistake"),
    ("apology_rate", "apologises"),
)


def _rate(d) -> str:
    if d is None or "undefined" in d:
        return "—"
    lo, hi = d["wilson95"]
    return f"{d['rate']:.3f} [{lo:.3f}, {hi:.3f}] ({d['k']}/{d['n']})"


_COUNTS = (
    ("items", lambda r: r["n_items"]),
    ("first ok", lambda r: r["n_initially_correct"]),
    ("kept", lambda r: r["outcomes"]["kept_correct"]),
    ("c→w", lambda r: r["outcomes"]["correct_to_wrong"]),
    ("w→c", lambda r: r["outcomes"]["wrong_to_correct"]),
    ("unparsed", lambda r: r["outcomes"]["unparsed"]),
)
#: Width used by :func:`flips_text` (``FlipResult.summary()``) by default.
TEXT_WIDTH = 100


def _group_column(t: Table) -> None:
    # Group labels (pushback templates above all) may be long: they wrap.
    t.add_column("group", justify="left", overflow="fold", min_width=5)


def rates_table(title: str, rows: dict) -> Table:
    """One row per group: outcome counts, then each rate as
    ``rate [Wilson 95%] (k/n)`` (the wide layout)."""
    t = Table(title=title, title_justify="left")
    _group_column(t)
    for col, _ in _COUNTS:
        t.add_column(col, justify="right", no_wrap=True)
    for _, name in _RATES:
        t.add_column(name, justify="right", no_wrap=True)
    for name, r in rows.items():
        if "undefined" in r:
            t.add_row(name, *["—"] * (len(_COUNTS) + len(_RATES)))
            continue
        t.add_row(
            name,
            *(str(get(r)) for _, get in _COUNTS),
            *(_rate(r.get(k)) for k, _ in _RATES),
        )
    return t


def counts_table(title: str, rows: dict) -> Table:
    """One row per group: the outcome counts only (the narrow layout)."""
    t = Table(title=title, title_justify="left")
    _group_column(t)
    for col, _ in _COUNTS:
        t.add_column(col, justify="right", no_wrap=True)
    for name, r in rows.items():
        cells = (
            ["—"] * len(_COUNTS)
            if "undefined" in r
            else [str(get(r)) for _, get in _COUNTS]
        )
        t.add_row(name, *cells)
    return t


def rates_long_table(title: str, rows: dict) -> Table:
    """One row per rate and group, rates in sections (the narrow layout)."""
    t = Table(title=title, title_justify="left")
    t.add_column("rate", no_wrap=True)
    _group_column(t)
    t.add_column("rate [Wilson 95%] (k/n)", justify="right", no_wrap=True)
    for key, label in _RATES:
        for j, (name, r) in enumerate(rows.items()):
            t.add_row(
                label if j == 0 else "",
                name,
                _rate(r.get(key)),
                end_section=len(rows) > 1 and j == len(rows) - 1,
            )
    return t


def _fits(table: Table, width: int) -> bool:
    return Console(width=10_000).measure(table).maximum <= width


def _rate_tables(title: str, rows: dict, width: int) -> list:
    """The wide table when it fits in ``width`` columns, else a counts table
    and a long rates table."""
    wide = rates_table(title, rows)
    if _fits(wide, width):
        return [wide]
    return [
        counts_table(f"{title}: outcomes", rows),
        rates_long_table(f"{title}: rates", rows),
    ]


def flips_tables(res, n_unparsed: int = 5, width: int = TEXT_WIDTH) -> list:
    """The flips result as rich renderables that fit in ``width`` columns
    (tables switch to a narrow layout when the wide one would not fit)."""
    out = [
        (
            f"[bold]answer flips under pushback[/bold]  items={len(res.items)}  "
            f"skipped={sum(res.skipped.values())}"
        ),
        *_rate_tables("Overall", {"all": res.overall}, width),
    ]
    for g, rows in res.groups.items():
        if g == "dataset" or len(rows) > 1:
            out.extend(_rate_tables(f"By {g}", rows, width))
            undefined = {k: v["undefined"] for k, v in rows.items() if "undefined" in v}
            out.extend(f"  {k}: {why}" for k, why in undefined.items())
    for reason, n in res.skipped.items():
        where = ", ".join(res.skipped_rows.get(reason, [])[:3])
        out.append(f"  skipped {n}: {reason}" + (f" (e.g. {where})" if where else ""))
    if res.comparisons:
        t = Table(title="Comparisons of flip rates", title_justify="left")
        for col in ("by", "a", "b"):
            t.add_column(col, overflow="fold")
        for col in ("test", "rate a", "rate b", "diff", "p"):
            t.add_column(
                col, no_wrap=True, justify="left" if col == "test" else "right"
            )
        for c in res.comparisons:
            p = "—" if c["p_value"] is None else f"{c['p_value']:.2g}"
            ra = "—" if c["rate_a"] is None else f"{c['rate_a']:.3f}"
            rb = "—" if c["rate_b"] is None else f"{c['rate_b']:.3f}"
            d = "—" if c["difference"] is None else f"{c['difference']:+.3f}"
            test = {"mcnemar_exact": "McNemar", "two_proportion": "2-prop z"}.get(
                c["test"], c["test"]
            )
            t.add_row(c["by"], c["a"], c["b"], test, ra, rb, d, p)
        out.append(t)
    if getattr(res, "comparisons_undefined", None):
        out.append(res.comparisons_undefined)
    unparsed = res.unparsed()
    if unparsed and n_unparsed:
        t = Table(
            title=f"Unparsed ({len(unparsed)}; first {min(n_unparsed, len(unparsed))})",
            title_justify="left",
        )
        shown = unparsed[:n_unparsed]
        cells = [[it.dataset, str(it.id)[:12], str(it.unparsed_reason)] for it in shown]
        # The reply gets what the other columns leave (4 columns: 13 for
        # borders and padding), between 20 and 90 characters.
        used = sum(
            max(len(c[j]) for c in cells + [["dataset", "id", "reason"]])
            for j in range(3)
        )
        room = max(20, min(90, width - used - 13))
        for col in ("dataset", "id", "reason"):
            t.add_column(col, no_wrap=True)
        t.add_column("reply (start)", no_wrap=True, overflow="ellipsis")
        for it, c in zip(shown, cells):
            reply = (it.reply or "").replace("\n", " ")
            t.add_row(*c, reply[: room - 1] + "…" if len(reply) > room else reply)
        out.append(t)
    return out


def flips_text(res, width: int = TEXT_WIDTH) -> str:
    return to_text(flips_tables(res, width=width), width=width)


def _ci(x: float, ci) -> str:
    return f"{x:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def probe_table(title: str, rows: dict) -> Table:
    """One row per group of the reward-model probe: pairs, ties, P(prefers
    sycophantic) with its Wilson interval, ties as half and the mean BT
    probability with bootstrap intervals, mean score difference."""
    t = Table(title=title, title_justify="left")
    cols = ("group", "pairs", "ties", "P(syc) [Wilson]", "ties ½ [boot]")
    for col in (*cols, "mean BT [boot]", "mean diff"):
        t.add_column(col, justify="left" if col == "group" else "right")
    for name, r in rows.items():
        if "undefined" in r:
            t.add_row(name, "—", "—", r["undefined"], "—", "—", "—")
            continue
        t.add_row(
            name,
            str(r["n"]),
            str(r["n_ties"]),
            _ci(r["p_prefers_sycophantic"], r["p_prefers_sycophantic_wilson95"]),
            _ci(r["p_ties_half"], r["p_ties_half_bootstrap95"]),
            _ci(r["mean_bt_probability"], r["mean_bt_probability_bootstrap95"]),
            f"{r['mean_diff']:+.4g}",
        )
    return t


def probe_tables(res: dict) -> list:
    info = res.get("reward_model", {})
    head = ", ".join(f"{k}={v}" for k, v in info.items() if v is not None)
    return [
        f"[bold]reward-model probe[/bold]  {head}",
        probe_table("Overall", {"all": res["overall"]}),
        probe_table("By dataset", res["by_dataset"]),
        probe_table("By dataset and pair source", res["by_dataset_source"]),
    ]
