"""`rlhf-diag winrate`: AlpacaEval win rates and length-controlled win rates."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlhf_diag.cli._args import finite_float

NAME = "winrate"
HELP = (
    "AlpacaEval win rates and length-controlled win rates from annotation files "
    "or folders"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        help="annotations.json(.gz) files, or folders searched for them",
    )
    parser.add_argument("--baseline", help="baseline name (default: from the files)")
    parser.add_argument(
        "--no-lc", action="store_true", help="skip the length-controlled GLM"
    )
    parser.add_argument(
        "--alignment",
        choices=("instruction", "position"),
        help="match difficulty by instruction text (default) or by row position "
        "(reproduces the published LC of files with missing rows)",
    )
    parser.add_argument(
        "--difficulty",
        type=Path,
        metavar="PATH",
        help="instruction difficulty table (default: estimated across the files)",
    )
    parser.add_argument(
        "--anchor-slope",
        type=finite_float(),
        default=None,
        help="length slope of the gamed-baseline anchor (default -1.613)",
    )
    parser.add_argument(
        "--no-anchor", action="store_true", help="fit without the gamed-baseline anchor"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="CSV",
        help="published leaderboard to compare with (AlpacaEval's CSV)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write JSON here")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="PATH.html",
        help="write a self-contained HTML report (raw vs length-controlled plot)",
    )


def run(args: argparse.Namespace) -> int:
    from rlhf_diag.cli._args import check_output
    from rlhf_diag.cli._progress import stage
    from rlhf_diag.exceptions import InputError
    from rlhf_diag.winrate import (
        ANCHOR_SLOPE,
        compare_leaderboard,
        read_annotations,
        read_difficulty,
        read_published,
        win_rates,
    )

    check_output(args.json, "--json")
    check_output(args.report, "--report")
    if args.no_anchor and args.anchor_slope is not None:
        raise InputError("--no-anchor and --anchor-slope contradict each other; give one")
    published = None
    if args.compare is not None:
        # Read and checked before the work, so that a bad table fails first.
        published = read_published(args.compare)
    difficulty, alignment = None, args.alignment or "instruction"
    if args.difficulty is not None:
        difficulty, implied = read_difficulty(args.difficulty)
        alignment = args.alignment or implied
    with stage(f"reading annotations from {len(args.paths)} path(s)"):
        frame = read_annotations(args.paths)
    slope = args.anchor_slope if args.anchor_slope is not None else ANCHOR_SLOPE
    if args.no_anchor:
        slope = None
    with stage("fitting (difficulty and one length-controlled GLM per model)"):
        res = win_rates(
            frame,
            baseline=args.baseline,
            length_controlled=not args.no_lc,
            difficulty=difficulty,
            alignment=alignment,
            anchor_slope=slope,
        )
    print(res.summary())
    out = res.to_dict()
    if args.compare is not None:
        cmp = compare_leaderboard(res, published, name=str(args.compare))
        out["comparison"] = cmp
        print(
            f"\nagainst {args.compare.name}: {cmp['n_models']} models in both, "
            f"max |win rate diff| {cmp['max_abs_win_rate_diff']:.2g}, "
            f"n_wins equal for {cmp['n_wins_equal']}"
        )
        if "lc_n" in cmp:
            print(
                f"LC within 1 point: {cmp['lc_within_1']:.1%}, within 2: "
                f"{cmp['lc_within_2']:.1%}, Spearman {cmp['lc_spearman']:.4f}, "
                f"max |diff| {cmp['lc_max_abs_diff']:.2f}"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.report is not None:
        from rlhf_diag.report import write_report

        source = ", ".join(str(p) for p in args.paths)
        with stage(f"writing {args.report}"):
            write_report(res, args.report, source=source)
        print(f"wrote {args.report}", file=sys.stderr)
    return 0
