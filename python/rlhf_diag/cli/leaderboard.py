"""`rlhf-diag leaderboard`: rank models from pairwise battles."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlhf_diag.cli._args import check_output
from rlhf_diag.cli._progress import stage
from rlhf_diag.exceptions import InputError

NAME = "leaderboard"
HELP = "Rank models from pairwise battles (Bradley-Terry, with intervals)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", help="battles file: JSONL, JSON, CSV or Parquet (.gz ok)"
    )
    parser.add_argument("--format", help="file format when the name does not tell")
    parser.add_argument("--model-a-col", default="model_a", help="first side's column")
    parser.add_argument("--model-b-col", default="model_b", help="second side's column")
    parser.add_argument("--winner-col", default="winner", help="outcome column")
    parser.add_argument("--weight-col", help="optional battle weight column")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="RAW=MEANING",
        help="extra winner label, MEANING one of model_a, model_b, tie (repeatable)",
    )
    parser.add_argument(
        "--ties", default="half", choices=["half", "davidson", "rao-kupper", "drop"]
    )
    parser.add_argument("--alpha", type=float, default=0.0, help="L2 prior strength")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap rounds for the intervals (default %(default)s; 0 for "
        "none: Wald intervals from the Hessian standard errors)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--level", type=float, default=0.95, help="interval coverage")
    parser.add_argument(
        "--anchor", metavar="MODEL=RATING", help="pin one model's rating (else centre)"
    )
    parser.add_argument("--scale", default="elo", choices=["elo", "log"])
    parser.add_argument(
        "--components",
        default="error",
        choices=["error", "separate"],
        help="a disconnected comparison graph is an error, or fit each part alone",
    )
    parser.add_argument("--threads", type=int, help="bootstrap threads (default: all)")
    parser.add_argument(
        "--no-se",
        action="store_true",
        help="skip the Hessian standard errors (O(K^3); for very many models): "
        "intervals then come from --bootstrap alone",
    )
    parser.add_argument(
        "--style-cols",
        metavar="COL[,COL...]",
        help="style control on these covariate columns (side a relative to b)",
    )
    parser.add_argument(
        "--style-text",
        metavar="TEXT_A,TEXT_B",
        help="style control on length and markdown counts of these answer columns",
    )
    parser.add_argument("--json", metavar="PATH", help="write the leaderboard as JSON")
    parser.add_argument(
        "--report",
        metavar="PATH.html",
        help="write a self-contained HTML report (ratings plot, win-rate heatmap)",
    )


def _pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    out = []
    for v in values:
        key, sep, val = v.rpartition("=")
        if not sep or not key:
            raise InputError(f"{what} {v!r}: expected NAME=VALUE")
        out.append((key, val))
    return out


def _anchor(value: str | None) -> tuple[str, float] | None:
    if value is None:
        return None
    ((model, rating),) = _pairs([value], "--anchor")
    try:
        return model, float(rating)
    except ValueError:
        raise InputError(f"--anchor {value!r}: {rating!r} is not a number") from None


def _render(lb) -> None:
    from rich.console import Console
    from rich.table import Table

    from rlhf_diag.leaderboard import UB_LEGEND

    table = Table(
        title=lb._header(),
        title_justify="left",
        caption=UB_LEGEND if lb.rows else None,
        caption_justify="left",
    )
    # Components fitted separately (--components separate): say which.
    split = any(r["component"] != 0 for r in lb.rows)
    for col, just in [("component", "right")] * split + [
        ("rank", "right"),
        ("ub", "right"),
        ("model", "left"),
        ("rating", "right"),
        (f"{lb.level:.0%} interval", "right"),
        ("se", "right"),
        ("battles", "right"),
        ("win %", "right"),
    ]:
        if col == "model":
            table.add_column(col, justify=just, overflow="fold", min_width=16)
        else:
            table.add_column(col, justify=just, no_wrap=True)
    for r in lb.rows:
        table.add_row(
            *[str(r["component"])] * split,
            "-" if r["rank"] is None else str(r["rank"]),
            "-" if r["rank_ub"] is None else str(r["rank_ub"]),
            r["model"],
            _num(r["rating"], r["status"]),
            _interval(r),
            _num(r["se"]),
            str(r["n_battles"]),
            "n/a" if r["win_rate"] is None else f"{100 * r['win_rate']:.1f}",
        )
    # Piped output is not cut to 80 columns: model names stay whole.
    width = None if sys.stdout.isatty() else 200
    Console(file=sys.stdout, width=width).print(table)


def _num(v, status: str = "ok") -> str:
    if v is None:
        return status if status in ("+inf", "-inf") else "n/a"
    return f"{v:.4g}" if abs(v) < 10 else f"{v:.2f}"


def _interval(r) -> str:
    if r["ci_low"] is None and r["ci_high"] is None:
        return "n/a"
    lo = "-inf" if r["ci_low"] is None else f"{r['ci_low']:.2f}"
    hi = "+inf" if r["ci_high"] is None else f"{r['ci_high']:.2f}"
    return f"[{lo}, {hi}]"


def run(args: argparse.Namespace) -> int:
    from rlhf_diag.leaderboard import CLI_OPTION_NAMES, option_names

    # Library messages name this command's options, not Python keywords.
    with option_names(CLI_OPTION_NAMES):
        return _run(args)


def _common(args: argparse.Namespace) -> dict:
    """The options the plain and the style-controlled fits share."""
    return {
        "format": args.format,
        "model_a": args.model_a_col,
        "model_b": args.model_b_col,
        "winner": args.winner_col,
        "weight": args.weight_col,
        "labels": dict(_pairs(args.label, "--label")) or None,
        "ties": args.ties,
        "alpha": args.alpha,
        "anchor": _anchor(args.anchor),
        "scale": args.scale,
        "level": args.level,
    }


def _run(args: argparse.Namespace) -> int:
    from rlhf_diag.leaderboard import fit_leaderboard

    _check_outputs(args)
    if args.style_cols or args.style_text:
        return _run_style(args)
    rounds = f", bootstrap {args.bootstrap} rounds" if args.bootstrap > 0 else ""
    with stage(f"reading {args.path} and fitting{rounds}"):
        lb = fit_leaderboard(
            args.path,
            **_common(args),
            bootstrap=args.bootstrap,
            seed=args.seed,
            components=args.components,
            n_jobs=args.threads,
            se=not args.no_se,
        )
    _output(lb, args)
    return 0


def _output(lb, args: argparse.Namespace) -> None:
    _render(lb)
    for x in lb.style or []:
        print(
            f"style {x['feature']}: coef {_num(x['coef'])}, se {_num(x['se'])}, "
            f"interval [{_num(x['ci_low'])}, {_num(x['ci_high'])}]"
        )
    if lb.style_dropped:
        print("style left out (never varies): " + ", ".join(lb.style_dropped))
    if args.json:
        text = json.dumps(lb.to_dict(), indent=2, allow_nan=False)
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    if args.report:
        from rlhf_diag.report import write_report

        with stage(f"writing {args.report}"):
            write_report(lb, args.report, source=str(args.path))
        print(f"wrote {args.report}", file=sys.stderr)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths in missing folders before reading or fitting."""
    check_output(args.json and Path(args.json), "--json")
    check_output(args.report and Path(args.report), "--report")


def _run_style(args: argparse.Namespace) -> int:
    from rlhf_diag.leaderboard import fit_style_controlled

    if args.style_cols and args.style_text:
        raise InputError("give --style-cols or --style-text, not both")
    if args.no_se:
        raise InputError(
            "--no-se applies to the plain fit: style control's intervals for the "
            "style coefficients come from the Hessian"
        )
    text = None
    if args.style_text:
        text = tuple(c.strip() for c in args.style_text.split(","))
        if len(text) != 2:
            raise InputError(
                f"--style-text {args.style_text!r}: expected TEXT_A,TEXT_B"
            )
    if args.ties not in ("half", "drop"):
        raise InputError("style control supports --ties half or drop")
    with stage(f"reading {args.path} and fitting with style control"):
        lb = fit_style_controlled(
            args.path,
            style=[c.strip() for c in args.style_cols.split(",")]
            if args.style_cols
            else None,
            style_text=text,
            **_common(args),
        )
    _output(lb, args)
    return 0
