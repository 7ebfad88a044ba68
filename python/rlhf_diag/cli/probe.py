"""``rlhf-diag probe``: does a reward model prefer the sycophantic reply to
"Are you sure?"? Scores (context, sycophantic reply) against (context,
truthful reply) pairs built from question sets and real transcripts."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

NAME = "probe"
HELP = "reward-model probe: P(RM prefers the sycophantic reply under pushback)"


def add_arguments(p) -> None:
    from rlhf_diag.cli._args import at_least, finite_float, positive_int

    p.add_argument(
        "--questions",
        nargs="+",
        default=[],
        metavar="SET",
        help="question sets for template pairs: truthfulqa, aqua, gsm8k (under "
        "--data-root) or question files",
    )
    p.add_argument(
        "--transcripts",
        nargs="+",
        default=[],
        type=Path,
        metavar="PATH",
        help="transcripts (as read by `rlhf-diag flips`): each flipped reply is "
        "a real sycophantic reply, each kept one a real truthful reply",
    )
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument(
        "--hf",
        metavar="MODEL",
        help="Hugging Face sequence-classification reward model (id or folder)",
    )
    m.add_argument(
        "--callable",
        metavar="MODULE:FUNC",
        help="a Python callable reward(contexts, replies) -> scores",
    )
    m.add_argument(
        "--minilm-train",
        type=Path,
        metavar="PAIRS",
        help="fit a linear reward head on MiniLM embeddings of these "
        "preference pairs (e.g. HH-RLHF helpful-base), then probe it",
    )
    p.add_argument(
        "--render",
        choices=["messages", "hh"],
        default=None,
        help="contexts passed to --callable as message lists (default) or as "
        "HH-RLHF prompt strings; --minilm-train always uses hh",
    )
    p.add_argument(
        "--l2", type=finite_float(0.0), default=1.0, help="ridge of the MiniLM head"
    )
    p.add_argument(
        "--embed-cache",
        type=Path,
        default=None,
        metavar="FILE.npz",
        help="keep MiniLM embeddings here between runs",
    )
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder holding sycophancy/{truthfulqa,aqua,gsm8k}",
    )
    p.add_argument(
        "--limit", type=positive_int, default=None, help="first N questions of each set"
    )
    p.add_argument(
        "--sample",
        type=positive_int,
        default=None,
        metavar="N",
        help="score a seeded random sample of N pairs per dataset",
    )
    p.add_argument(
        "--seed",
        type=at_least(0),
        default=0,
        help="seeds option order, wrong answers, --sample and the bootstrap",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=32, help="pairs per batch"
    )
    p.add_argument(
        "--n-boot", type=positive_int, default=2000, help="bootstrap resamples"
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if any)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT")


def _pairs(args):
    from rlhf_diag.exceptions import InputError
    from rlhf_diag.sycophancy.flips import load_transcripts, score_item
    from rlhf_diag.sycophancy.probe import (
        pairs_from_questions,
        pairs_from_transcripts,
        sample_pairs,
    )
    from rlhf_diag.sycophancy.questions import load_questions

    pairs = []
    for name in args.questions:
        qs = load_questions(
            name, data_root=args.data_root, limit=args.limit, seed=args.seed
        )
        pairs += pairs_from_questions(qs, seed=args.seed)
    if args.transcripts:
        rows, _, _ = load_transcripts(args.transcripts)
        items = [score_item(r) for r in rows]
        pairs += pairs_from_transcripts(items, rows, seed=args.seed)
    if not pairs:
        raise InputError("no pairs: pass --questions and/or --transcripts")
    if args.sample is not None:
        pairs = sample_pairs(pairs, args.sample, random_state=args.seed)
    return pairs


def _reward(args):
    from rlhf_diag.exceptions import InputError
    from rlhf_diag.sycophancy import hf
    from rlhf_diag.sycophancy.probe import render_hh

    if args.hf:
        return hf.HFRewardModel(args.hf, device=args.device), None, None
    if args.callable:
        module, _, func = args.callable.partition(":")
        if not func:
            raise InputError(f"--callable {args.callable!r}: expected MODULE:FUNC")
        fn = getattr(importlib.import_module(module), func)
        render = render_hh if args.render == "hh" else None
        return fn, render, None
    embed = hf.default_embed(device=args.device)
    if args.embed_cache is not None:
        embed = hf.CachedEmbed(embed, args.embed_cache)
    rm = hf.EmbeddingRewardModel.fit(args.minilm_train, l2=args.l2, embed=embed)
    return rm, render_hh, embed


def run(args) -> int:
    from rlhf_diag.cli._args import output_console
    from rlhf_diag.cli._progress import stage
    from rlhf_diag.sycophancy._render import probe_tables
    from rlhf_diag.sycophancy.probe import probe_reward_model

    with stage("building pairs"):
        pairs = _pairs(args)
    with stage("loading or fitting the reward model"):
        reward, render, embed = _reward(args)
    kw = {
        "render": render,
        "batch_size": args.batch_size,
        "n_boot": args.n_boot,
        "random_state": args.seed,
    }
    try:
        if sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task(f"scoring {len(pairs)} pairs", total=len(pairs))
                res = probe_reward_model(
                    pairs,
                    reward,
                    **kw,
                    progress=lambda d, t: bar.update(task, completed=d),
                )
        else:
            res = probe_reward_model(pairs, reward, **kw)
    finally:
        if hasattr(embed, "save"):
            embed.save()
    info = (
        reward.to_dict()
        if hasattr(reward, "to_dict")
        else {"kind": type(reward).__name__}
    )
    out = {"reward_model": info, **res}
    console = output_console(160)
    for r in probe_tables(out):
        console.print(r)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
