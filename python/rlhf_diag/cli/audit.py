"""``rlhf-diag audit``: length and format bias, data quality and a style-only
Bradley-Terry fit of one preference file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rlhf_diag.cli._args import at_least, check_output, output_console, positive_int
from rlhf_diag.cli._progress import stage

NAME = "audit"
HELP = "audit a preference file: length/format bias, data quality, style fit"


def add_arguments(p) -> None:
    from rlhf_diag.io import TABLE_FORMATS
    from rlhf_diag.pairs import FORMATS

    p.add_argument("path", type=Path, help="JSONL (plain or .gz), JSON, CSV or Parquet")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="input format (detected from the columns when omitted)")
    p.add_argument("--file-type", choices=TABLE_FORMATS, default=None,
                   help="file type (detected from the file name when omitted)")
    p.add_argument("--prompt-col", default=None,
                   help="prompt column (default: 'prompt' when the file has one)")
    p.add_argument("--chosen-col", default="chosen")
    p.add_argument("--rejected-col", default="rejected")
    p.add_argument("--truncate", type=positive_int, default=None, metavar="N",
                   help="also count pairs identical after cutting to N units")
    p.add_argument("--truncate-unit", choices=("chars", "words"), default="chars")
    p.add_argument("--folds", type=at_least(2), default=5,
                   help="k for the style fit's k-fold CV (>= 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=None,
                   help="threads for the text pass")
    p.add_argument("--json", type=Path, default=None, metavar="PATH",
                   help="write every statistic as JSON (keys in docs/audit.md)")
    p.add_argument("--report", type=Path, default=None, metavar="PATH.html",
                   help="write a self-contained HTML report (plots, example rows)")


def run(args) -> int:
    from rlhf_diag.audit import audit
    from rlhf_diag.pairs import load_pairs
    from rlhf_diag.render import audit_tables

    check_output(args.json, "--json")
    check_output(getattr(args, "report", None), "--report")
    with stage(f"reading {args.path}"):
        ps = load_pairs(args.path, args.format, prompt_col=args.prompt_col,
                        chosen_col=args.chosen_col, rejected_col=args.rejected_col,
                        file_type=args.file_type)
    with stage(f"measuring {2 * ps.n_pairs} responses and fitting"):
        res = audit(ps, truncate=args.truncate, truncate_unit=args.truncate_unit,
                    folds=args.folds, random_state=args.seed, n_jobs=args.threads)
    console = output_console(110)
    for r in audit_tables(res):
        console.print(r)
    if args.json:
        args.json.write_text(json.dumps(res.to_dict(), indent=2))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.report:
        from rlhf_diag.report import write_report

        with stage(f"writing {args.report}"):
            write_report(res, args.report, examples=ps)
        print(f"wrote {args.report}", file=sys.stderr)
    return 0
