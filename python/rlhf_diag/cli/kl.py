"""`rlhf-diag kl`: KL estimates and the KL-penalised objective of rollouts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rlhf_diag.exceptions import InputError
from rlhf_diag.io import TABLE_FORMATS, read_table
from rlhf_diag.kl import (
    ESTIMATORS,
    estimate_kl_frame,
    kl_objective,
    reward_kl_curve,
)

NAME = "kl"
HELP = "KL estimators (k1, k2, k3, abs, mse) and the r - beta*KL objective of rollouts"


def _clamp(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI, got {text!r}") from None
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
        default="sum",
        help="per-sequence sum (PPO) or per-token mean of the KL in the objective",
    )
    parser.add_argument(
        "--clamp",
        type=_clamp,
        metavar="LO,HI",
        help="clamp per-token values; write --clamp=-10,10 for negative bounds",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write JSON here")


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
        t.add_row(e, *("n/a" if c is None else f"{c:.6g}" for c in cells))
    return t


def _curve_table(curve) -> Table:
    t = Table(
        title=f"reward vs KL ({curve.estimator}, per-sequence {curve.aggregation})"
    )
    for col in curve.table.columns:
        t.add_column(col, justify="right")
    for row in curve.table.iter_rows():
        t.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row))
    return t


def run(args: argparse.Namespace) -> int:
    frame = read_table(args.path, args.format)
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
    out = est.to_dict()
    console = Console()
    console.print(_table(est, out["token_mean"]))
    share = out["share_negative_k1"]
    if share:
        console.print(
            f"k1 is negative on {share:.1%} of sequences "
            f"(there a k1 penalty acts as a bonus)"
        )
    if args.clamp is not None:
        console.print(f"clamp {args.clamp}: tokens changed {est.clamped}")
    if args.beta is not None:
        if est.reward is None:
            raise InputError("--beta needs a reward column (see --reward-col)")
        obj = kl_objective(
            est, args.beta, estimator=args.estimator, aggregation=args.aggregation
        )
        out["objective"] = obj.to_dict()
        console.print(obj.summary())
    if est.reward is not None and est.step is not None:
        curve = reward_kl_curve(
            est, estimator=args.estimator, aggregation=args.aggregation
        )
        out["reward_vs_kl"] = curve.to_dict()
        console.print(_curve_table(curve))
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2, default=str))
        console.print(f"wrote {args.json}")
    return 0
