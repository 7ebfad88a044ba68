"""Text and HTML views of result objects. Nothing here computes a statistic:
every figure is read from the result object.

Dataset text is hostile input (red-team data holds HTML and script on
purpose): the HTML view is built by :mod:`rlhf_diag.report`, which escapes
every string.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _ci(ci) -> str:
    return "—" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _pval(p) -> str:
    if p is None:
        return "—"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def audit_tables(res) -> list:
    """The audit as a list of rich renderables (title lines and tables)."""
    out = [
        f"[bold]{res.source}[/bold]  format={res.format}  rows read={res.n_rows_read}"
        f"  pairs={res.n_pairs}  skipped={sum(res.skipped.values())}"
    ]
    t = Table(title="Length and format: chosen vs rejected", title_justify="left")
    for col in ("feature", "chosen more", "fewer", "equal", "share more",
                "Wilson 95%", "binom p", "mean diff"):
        t.add_column(col, justify="left" if col == "feature" else "right")
    for name, d in {**res.length, **res.features}.items():
        more = d.get("chosen_longer", d.get("chosen_more"))
        fewer = d.get("chosen_shorter", d.get("chosen_fewer"))
        frac = d.get("frac_chosen_longer", d.get("frac_chosen_more"))
        t.add_row(name, str(more), str(fewer), str(d["equal"]), _fmt(frac),
                  _ci(d["wilson95"]), _pval(d["binomial_p"]), _fmt(d["mean_diff"], 2))
    out.append(t)
    b = Table(title="P(longer response chosen) by length ratio (chars + 1)",
              title_justify="left")
    for col in ("ratio", "pairs", "longer chosen", "P", "Wilson 95%"):
        b.add_column(col, justify="right")
    for e in res.length_ratio_bins:
        hi = "∞" if e["ratio_high"] is None else f"{e['ratio_high']:g}"
        b.add_row(f"{e['ratio_low']:g}–{hi}", str(e["n"]), str(e["longer_chosen"]),
                  _fmt(e["p_longer_chosen"]), _ci(e["wilson95"]))
    out.append(b)
    q = Table(title="Data quality", title_justify="left")
    for col in ("finding", "count", "first rows"):
        q.add_column(col)
    for key, item in res.quality.items():
        q.add_row(key.replace("_", " "), str(item["count"]),
                  ", ".join(map(str, item["rows"])))
    for reason, n in res.skipped.items():
        q.add_row(f"skipped: {reason}", str(n),
                  ", ".join(map(str, res.skipped_rows.get(reason, []))))
    out.append(q)
    sf = res.style_fit
    if "coefficients" in sf:
        s = Table(title=f"Style-only Bradley-Terry fit ({sf['model']})",
                  title_justify="left")
        for col in ("feature", "coef", "se", "95% CI"):
            s.add_column(col, justify="left" if col == "feature" else "right")
        for c in sf["coefficients"]:
            s.add_row(c["feature"], _fmt(c["coef"]), _fmt(c["se"]), _ci(c["ci95"]))
        out.append(s)
        line = (f"iterations={sf['iterations']}  grad_norm={sf['grad_norm']:.1e}"
                f"  L2={sf['penalty']['l2']}")
        if "cv" in sf and sf["cv"]["accuracy"] is None:
            line += f"  held-out figures refused: {sf['cv']['undefined']}"
        elif "cv" in sf:
            line += (f"  {sf['cv']['folds']}-fold held-out accuracy="
                     f"{sf['cv']['accuracy']:.3f}  log-loss={sf['cv']['log_loss']:.3f}"
                     f" (CV L2={sf['cv']['l2']})")
        if sf["dropped_no_variation"]:
            line += f"  (no variation: {', '.join(sf['dropped_no_variation'])})"
        out.append(line)
    else:
        out.append(f"Style-only fit refused: {sf.get('undefined')}")
    return out


def to_text(renderables, width: int = 110) -> str:
    console = Console(file=io.StringIO(), width=width, record=True,
                      color_system=None, force_terminal=False)
    for r in renderables:
        console.print(r)
    return console.export_text()


def audit_text(res) -> str:
    return to_text(audit_tables(res))


def audit_html(res) -> str:
    """The audit's report page as an HTML fragment for notebooks (plots
    included when matplotlib is installed; no example rows)."""
    from rlhf_diag.report import build_page

    return build_page(res).fragment()
