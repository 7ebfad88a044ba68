"""``rlhf-diag flips``: answer flips under "Are you sure?" pushback, read from
transcript files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAME = "flips"
HELP = "measure answer flips under pushback from transcripts (chat or flat format)"


def add_arguments(p) -> None:
    from rlhf_diag.cli._args import at_least
    from rlhf_diag.sycophancy.flips import GROUPINGS

    p.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="transcript files: JSONL (plain or .gz), JSON, CSV or Parquet",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="dataset label for rows without one (default: file name)",
    )
    p.add_argument("--model", default=None, help="model label for rows without one")
    p.add_argument(
        "--compare",
        choices=GROUPINGS,
        default=None,
        help="compare flip rates between every pair of this grouping's "
        "levels (McNemar on paired items, else two-proportion)",
    )
    p.add_argument(
        "--show-unparsed",
        type=at_least(0),
        default=10,
        metavar="N",
        help="list the first N unparsed items (default 10; 0 for none)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="OUT",
        help="write summary and per-item outcomes as JSON (keys in docs/sycophancy.md)",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="PATH.html",
        help="write a self-contained HTML report (rates plot, example replies)",
    )


def run(args) -> int:
    from rich.console import Console

    from rlhf_diag.cli._args import check_output
    from rlhf_diag.cli._progress import stage
    from rlhf_diag.sycophancy._render import flips_tables
    from rlhf_diag.sycophancy.flips import analyse_flips

    check_output(args.json, "--json")
    check_output(args.report, "--report")
    with stage(f"reading and scoring {len(args.paths)} file(s)"):
        res = analyse_flips(
            args.paths, dataset=args.dataset, model=args.model, compare=args.compare
        )
    # Tables fit the terminal (COLUMNS when set): narrow ones switch layout.
    console = Console()
    for r in flips_tables(res, n_unparsed=args.show_unparsed, width=console.width):
        console.print(r)
    if args.json:
        args.json.write_text(json.dumps(res.to_dict(), indent=2, default=str))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.report:
        from rlhf_diag.report import write_report

        with stage(f"writing {args.report}"):
            write_report(res, args.report)
        print(f"wrote {args.report}", file=sys.stderr)
    return 0
