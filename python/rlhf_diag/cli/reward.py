"""`rlhf-diag reward`: fit a Bradley-Terry reward model on chosen-vs-rejected
feature differences (style counts, numeric columns, MiniLM embeddings)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlhf_diag.cli._args import at_least, check_output, finite_float, positive_int

NAME = "reward"
HELP = (
    "fit a reward model on feature differences of chosen vs rejected: style "
    "counts, numeric columns you name, MiniLM embeddings"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rlhf_diag.io import TABLE_FORMATS
    from rlhf_diag.pairs import FORMATS

    p.add_argument("path", type=Path, help="JSONL (plain or .gz), JSON, CSV or Parquet")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="input layout (default: detected from the columns)")
    p.add_argument("--file-type", choices=TABLE_FORMATS, default=None)
    p.add_argument("--prompt-col", default=None,
                   help="prompt column (default: 'prompt' when the file has one)")
    p.add_argument("--chosen-col", default="chosen")
    p.add_argument("--rejected-col", default="rejected")
    p.add_argument(
        "--numeric", action="append", default=[], metavar="CHOSEN_COL:REJECTED_COL",
        help="a numeric feature: two columns (the feature is chosen minus "
        "rejected) or one column already holding that difference; repeatable",
    )
    p.add_argument("--no-style", action="store_true",
                   help="leave out the 12 style-count differences")
    p.add_argument("--embed", action="store_true",
                   help="add MiniLM embeddings of prompt + response (torch extra)")
    p.add_argument("--l2", type=finite_float(0.0), default=1.0, help="ridge strength (default 1)")
    p.add_argument("--l1", type=finite_float(0.0), default=0.0, help="lasso strength (default 0)")
    p.add_argument("--folds", type=at_least(2), default=5,
                   help="folds of the held-out evaluation (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for the text features (default: all cores)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="write the fit and evaluation as JSON")


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}" + ("" if k == 1 else "s")


def _table(model):
    from rich.table import Table

    fit = model.fit
    t = Table(title=f"reward model: {_n(model.n_pairs, 'pair')}, "
                    f"{_n(len(model.feature_names), 'feature')}",
              title_justify="left")
    scales = model.scales or (None,) * len(model.feature_names)
    cols = ["feature", "coef", "95% interval"]
    if any(s is not None for s in scales):
        cols.append("per raw unit")
    for col in cols:
        t.add_column(col, justify="left" if col == "feature" else "right")
    for j, name in enumerate(model.feature_names):
        coef = fit.coef_[j]
        ci = ("—" if fit.ci95_ is None
              else f"[{fit.ci95_[j, 0]:.4g}, {fit.ci95_[j, 1]:.4g}]")
        row = [name, f"{coef:.4g}", ci]
        if len(cols) == 4:
            row.append("" if scales[j] is None else f"{coef / scales[j]:.4g}")
        t.add_row(*row)
    return t


def run(args) -> int:
    from rlhf_diag.cli._args import output_console
    from rlhf_diag.cli._progress import stage
    from rlhf_diag.pairs import load_pairs
    from rlhf_diag.reward import feature_reward_model

    check_output(args.json, "--json")
    if args.no_style and not args.numeric and not args.embed:
        print("error: --no-style leaves no features: add --numeric or --embed",
              file=sys.stderr)
        return 2
    with stage(f"reading {args.path}"):
        ps = load_pairs(args.path, args.format, prompt_col=args.prompt_col,
                        chosen_col=args.chosen_col, rejected_col=args.rejected_col,
                        file_type=args.file_type)
    embeddings = None
    if args.embed:
        from rlhf_diag.reward import embed_texts

        prompt = ps.frame["prompt"]
        with stage(f"embedding {2 * ps.n_pairs} prompt + response texts with MiniLM "
                   "(a few texts a second on a CPU)"):
            embeddings = (
                embed_texts((prompt + ps.frame["chosen"]).to_list()),
                embed_texts((prompt + ps.frame["rejected"]).to_list()),
            )
    with stage(f"fitting on {ps.n_pairs} pairs with {args.folds}-fold evaluation"):
        model = feature_reward_model(
            ps, style=not args.no_style, numeric=args.numeric, embeddings=embeddings,
            k=args.folds, random_state=args.seed, l2=args.l2, l1=args.l1,
            n_jobs=args.threads,
        )
    console = output_console(100)
    left_out = ps.n_pairs - model.n_pairs
    console.print(
        f"{ps.source}: {ps.n_rows_read} rows read, {_n(ps.n_pairs, 'pair')} loaded"
        + (f", {left_out} left out for missing values (above)" if left_out else "")
        + f", {_n(model.n_pairs, 'pair')} fitted"
    )
    for line in ps.skipped.describe():
        console.print(line)
    if model.dropped:
        console.print("never differ, left out: " + ", ".join(model.dropped))
    cv = model.cv
    if cv["accuracy"] is None:
        console.print(f"held-out evaluation refused: {cv.get('undefined', '')}")
    else:
        console.print(f"{cv['k']}-fold held-out accuracy {cv['accuracy']:.4f} over "
                      f"{_n(model.n_pairs, 'held-out pair')} (a zero margin counts "
                      f"half), log-loss {cv['log_loss']:.4f}; 0.5 is chance")
    fit = model.fit
    console.print(f"fit: {fit.status} after {fit.n_iter_} iterations "
                  f"({fit.solver}, {fit.penalty}), max |gradient| {fit.grad_norm_:.2g}")
    if fit.separated_features:
        console.print(
            "separation: " + ", ".join(fit.separated_features)
            + (" always favour one side in some direction; the estimates are finite "
               "only because of the ridge (--l2) and grow without it"
               if fit.l2 > 0 else " separate the pairs: no finite estimate")
        )
    if fit.coef_ is not None and fit.se_ is None and fit.se_reason:
        console.print(f"no intervals: {fit.se_reason}")
    if fit.coef_ is None:
        console.print(f"coefficients refused: {fit.refused_reason}")
    elif len(model.feature_names) <= 64:
        console.print(_table(model))
    else:
        console.print(f"{len(model.feature_names)} coefficients: see --json")
    if args.json:
        args.json.write_text(json.dumps(model.to_dict(), indent=2))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
