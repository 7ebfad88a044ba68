"""Text and HTML views of a :class:`~rlhf_diag.sycophancy.flips.FlipResult`
and of the reward-model probe's result. Nothing here computes a statistic:
every figure is read from the result."""

from __future__ import annotations

import html

from rich.table import Table

from rlhf_diag.render import to_text

_RATES = (
    ("flip_rate", "flip (c→w)"),
    ("not_kept_rate", "not kept"),
    ("wrong_to_correct_rate", "w→c"),
    ("any_change_rate", "any change"),
    ("admits_mistake_rate", "admits mistake"),
    ("apology_rate", "apologises"),
)


def _rate(d) -> str:
    if d is None or "undefined" in d:
        return "—"
    lo, hi = d["wilson95"]
    return f"{d['rate']:.3f} [{lo:.3f}, {hi:.3f}] ({d['k']}/{d['n']})"


def rates_table(title: str, rows: dict) -> Table:
    """One row per group: outcome counts, then each rate as
    ``rate [Wilson 95%] (k/n)``."""
    t = Table(title=title, title_justify="left")
    for col in ("group", "items", "first ok", "kept", "c→w", "w→c", "unparsed"):
        t.add_column(col, justify="left" if col == "group" else "right")
    for _, name in _RATES:
        t.add_column(name, justify="right", no_wrap=True)
    for name, r in rows.items():
        if "undefined" in r:
            t.add_row(name, *["—"] * (6 + len(_RATES)))
            continue
        o = r["outcomes"]
        t.add_row(
            name,
            str(r["n_items"]),
            str(r["n_initially_correct"]),
            str(o["kept_correct"]),
            str(o["correct_to_wrong"]),
            str(o["wrong_to_correct"]),
            str(o["unparsed"]),
            *(_rate(r.get(k)) for k, _ in _RATES),
        )
    return t


def flips_tables(res, n_unparsed: int = 5) -> list:
    out = [
        (
            f"[bold]answer flips under pushback[/bold]  items={len(res.items)}  "
            f"skipped={sum(res.skipped.values())}"
        ),
        rates_table("Overall", {"all": res.overall}),
    ]
    for g, rows in res.groups.items():
        if g == "dataset" or len(rows) > 1:
            out.append(rates_table(f"By {g}", rows))
            undefined = {k: v["undefined"] for k, v in rows.items() if "undefined" in v}
            out.extend(f"  {k}: {why}" for k, why in undefined.items())
    if res.comparisons:
        t = Table(title="Comparisons of flip rates", title_justify="left")
        for col in ("by", "a", "b", "test", "rate a", "rate b", "diff", "p"):
            t.add_column(col)
        for c in res.comparisons:
            p = "—" if c["p_value"] is None else f"{c['p_value']:.2g}"
            ra = "—" if c["rate_a"] is None else f"{c['rate_a']:.3f}"
            rb = "—" if c["rate_b"] is None else f"{c['rate_b']:.3f}"
            d = "—" if c["difference"] is None else f"{c['difference']:+.3f}"
            t.add_row(c["by"], c["a"], c["b"], c["test"], ra, rb, d, p)
        out.append(t)
    unparsed = res.unparsed()
    if unparsed and n_unparsed:
        t = Table(
            title=f"Unparsed ({len(unparsed)}; first {min(n_unparsed, len(unparsed))})",
            title_justify="left",
        )
        for col in ("dataset", "id", "reason", "reply (start)"):
            t.add_column(col)
        for it in unparsed[:n_unparsed]:
            reply = (it.reply or "").replace("\n", " ")
            t.add_row(
                it.dataset,
                str(it.id)[:12],
                str(it.unparsed_reason),
                reply[:90] + ("…" if len(reply) > 90 else ""),
            )
        out.append(t)
    return out


def flips_text(res) -> str:
    return to_text(flips_tables(res), width=260)


def flips_html(res) -> str:
    rows = []
    for g, levels in res.groups.items():
        for name, r in levels.items():
            rows.append(
                f"<tr><td>{html.escape(g)}</td><td>{html.escape(name)}</td>"
                f"<td>{html.escape(_rate(r.get('flip_rate')))}</td>"
                f"<td>{html.escape(_rate(r.get('admits_mistake_rate')))}</td></tr>"
            )
    return (
        "<div><b>answer flips under pushback</b>: "
        f"{len(res.items)} items<table><tr><th>grouping</th><th>group</th>"
        "<th>flip rate (Wilson 95%)</th><th>admits mistake</th></tr>"
        f"{''.join(rows)}</table></div>"
    )


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
