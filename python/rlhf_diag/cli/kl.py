"""`rlhf-diag kl`: KL estimates and the KL-penalised objective of rollouts."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table

from rlhf_diag.cli._args import check_output
from rlhf_diag.cli._progress import stage
from rlhf_diag.exceptions import InputError, UndefinedStatisticError
from rlhf_diag.io import TABLE_FORMATS
from rlhf_diag.kl import (
    ESTIMATORS,
    estimate_kl_frame,
    kl_objective,
    read_rollouts,
    reward_kl_curve,
)

NAME = "kl"
HELP = "KL estimators (k1, k2, k3, abs, mse) and the r - beta*KL objective of rollouts"


#: Shown for a figure that has no value (a standard error from one value).
MISSING = "—"


def _clamp(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI, got {text!r}") from None
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise argparse.ArgumentTypeError(f"need LO <= HI, got {text!r}")
    return lo, hi


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="rollouts (JSONL, JSON, CSV, Parquet)")
    parser.add_argument("--format", choices=TABLE_FORMATS, help="input format")
    parser.add_argument("--policy-col", default="policy_logprobs")
    parser.add_argument("--ref-col", default="ref_logprobs")
    sel = parser.add_mutually_exclusive_group()
    sel.add_argument("--mask-col", help="per-token mask column (default: 'mask')")
    sel.add_argument(
        "--length-col", help="response length column (default: 'response_length')"
    )
    parser.add_argument("--reward-col", help="per-sequence reward (default: 'reward')")
    parser.add_argument(
        "--step-col", help="step / beta / checkpoint column for reward vs KL"
    )
    parser.add_argument("--beta", type=float, help="KL coefficient of the objective")
    parser.add_argument(
        "--estimator", choices=ESTIMATORS, default="k1", help="KL in the objective"
    )
    parser.add_argument(
        "--aggregation",
        choices=("sum", "mean"),
        default=None,
        help="per-sequence sum (PPO; default) or per-token mean of the KL in the "
        "objective (--beta) and the reward-vs-KL curve",
    )
    parser.add_argument(
        "--clamp",
        type=_clamp,
        metavar="LO,HI",
        help="clamp per-token values; write --clamp=-10,10 for negative bounds",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write JSON here")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH.html",
        help="write a self-contained HTML report (histograms, reward vs KL)",
    )


def _table(est, token_mean: dict | None) -> Table:
    t = Table(
        title=f"KL per sequence: {est.n_seqs} sequences, "
        f"{int(est.n_tokens.sum())} tokens, selection: {est.selection}",
        caption="mean/se/min/max over per-sequence sums; token mean = "
        "all sums / all selected tokens",
    )
    for col in ("estimator", "mean", "se", "min", "max", "token mean"):
        t.add_column(col, justify="left" if col == "estimator" else "right")
    for e in est.estimators:
        d = est.describe(e)
        tm = None if token_mean is None else token_mean[e]
        cells = [d["mean"], d["se"], d["min"], d["max"], tm]
        t.add_row(e, *(_cell(c) for c in cells))
    return t


def _cell(value) -> str:
    if value is None:
        return MISSING
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _curve_table(curve) -> Table:
    t = Table(
        title=f"reward vs KL ({curve.estimator}, per-sequence {curve.aggregation})"
    )
    for col in curve.table.columns:
        t.add_column(col, justify="right")
    for row in curve.table.iter_rows():
        t.add_row(*(_cell(v) for v in row))
    if curve.table["n"].min() < 2:
        t.caption = f"{MISSING}: one sequence at that level, no standard error"
    return t


def _check_options(args: argparse.Namespace) -> None:
    """Refuse bad options before reading or computing anything."""
    if args.beta is not None and not (math.isfinite(args.beta) and args.beta >= 0):
        raise InputError(f"--beta must be finite and >= 0, got {args.beta}")
    check_output(args.report, "--report")
    args.aggregation_given = args.aggregation is not None
    args.aggregation = args.aggregation or "sum"
    if args.json is None:
        return
    folder = args.json.parent
    if not folder.is_dir():
        raise InputError(f"--json {args.json}: folder {folder} does not exist")
    if args.json.is_dir():
        raise InputError(f"--json {args.json}: is a folder; give a file path")
    if not os.access(folder, os.W_OK):
        raise InputError(f"--json {args.json}: folder {folder} is not writable")


def _check_columns(frame: pl.DataFrame, args: argparse.Namespace) -> None:
    """Every named column exists; --beta finds rewards. Errors name options."""
    have = frame.columns
    named = [
        ("--policy-col", args.policy_col),
        ("--ref-col", args.ref_col),
        ("--mask-col", args.mask_col),
        ("--length-col", args.length_col),
        ("--reward-col", args.reward_col),
        ("--step-col", args.step_col),
    ]
    for option, col in named:
        if col is not None and col not in have:
            raise InputError(f"{option}: column {col!r} not found; have {have}")
    if args.beta is not None and args.reward_col is None and "reward" not in have:
        raise InputError(
            f"--beta needs per-sequence rewards: there is no 'reward' column; "
            f"name one with --reward-col (have {have})"
        )


def _compute(frame: pl.DataFrame, args: argparse.Namespace):
    est = estimate_kl_frame(
        frame,
        policy_col=args.policy_col,
        ref_col=args.ref_col,
        mask_col=args.mask_col,
        length_col=args.length_col,
        reward_col=args.reward_col,
        step_col=args.step_col,
        clamp=args.clamp,
    )
    obj = curve = None
    try:
        if args.beta is not None:
            obj = kl_objective(
                est, args.beta, estimator=args.estimator, aggregation=args.aggregation
            )
        if est.reward is not None and est.step is not None:
            curve = reward_kl_curve(
                est, estimator=args.estimator, aggregation=args.aggregation
            )
    except UndefinedStatisticError as exc:
        raise UndefinedStatisticError(
            f"--aggregation {args.aggregation}: {exc}"
        ) from None
    return est, obj, curve


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    with stage(f"reading {args.path}"):
        frame = read_rollouts(args.path, args.format)
    _check_columns(frame, args)
    with stage(f"estimating KL over {frame.height} sequences"):
        est, obj, curve = _compute(frame, args)
    if args.aggregation_given and obj is None and curve is None:
        raise InputError(
            "--aggregation applies to the objective (--beta) and the reward-vs-KL "
            "curve (rewards with a step column); neither was asked for"
        )
    out = est.to_dict()
    if obj is not None:
        out["objective"] = obj.to_dict()
    if curve is not None:
        out["reward_vs_kl"] = curve.to_dict()
    console = Console()
    console.print(_table(est, out["token_mean"]))
    share = out["share_negative_k1"]
    if share:
        console.print(
            f"k1 is negative on {share:.1%} of sequences "
            f"(there a k1 penalty acts as a bonus)"
        )
    if args.clamp is not None:
        changed = ", ".join(f"{k} {v}" for k, v in est.clamped.items())
        console.print(f"clamp to [{args.clamp[0]:g}, {args.clamp[1]:g}]: tokens "
                      f"changed per estimator: {changed}")
    if obj is not None:
        console.print(obj.summary())
    if curve is not None:
        console.print(_curve_table(curve))
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(out, indent=2, default=str))
        except OSError as exc:
            raise InputError(f"--json {args.json}: cannot write ({exc})") from None
        console.print(f"wrote {args.json}")
    if args.report is not None:
        from rlhf_diag.report import write_report

        with stage(f"writing {args.report}"):
            write_report(est, args.report, source=str(args.path), objective=obj,
                         curve=curve, estimator=args.estimator,
                         aggregation=args.aggregation)
        console.print(f"wrote {args.report}")
    return 0
