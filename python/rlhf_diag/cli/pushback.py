"""``rlhf-diag pushback``: ask a model questions, push back ("Are you sure?"),
and write transcripts that ``rlhf-diag flips`` reads."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

NAME = "pushback"
HELP = "ask a model questions, push back, and record transcripts (resumable)"


def add_arguments(p) -> None:
    from rlhf_diag.cli._args import at_least, finite_float, positive_int
    from rlhf_diag.sycophancy.runner import DEFAULT_TEMPLATE, TEMPLATES

    p.add_argument(
        "questions",
        help="truthfulqa, aqua, gsm8k (found under --data-root) or a "
        "question file (those formats, or flat: question, gold[, options])",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="OUT.jsonl",
        help="transcripts (appended; finished items are skipped on rerun)",
    )
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument(
        "--endpoint-model",
        metavar="NAME",
        help="model name at an OpenAI-compatible chat-completions endpoint",
    )
    m.add_argument(
        "--hf",
        metavar="MODEL",
        help="Hugging Face causal LM id or path (needs torch, transformers)",
    )
    m.add_argument(
        "--callable",
        metavar="MODULE:FUNC",
        help="a Python callable from a list of messages to the reply text",
    )
    p.add_argument(
        "--base-url",
        default=None,
        help="endpoint base URL, e.g. http://localhost:8000/v1 "
        "(default: $OPENAI_BASE_URL)",
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="API key (safer: leave unset and use --api-key-env)",
    )
    p.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        metavar="VAR",
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )
    p.add_argument(
        "--retries", type=at_least(0), default=5, help="endpoint retries (default 5)"
    )
    p.add_argument(
        "--timeout", type=finite_float(0.0, strict=True), default=60.0, help="seconds per request"
    )
    p.add_argument("--max-tokens", type=positive_int, default=512)
    p.add_argument(
        "--template",
        default=DEFAULT_TEMPLATE,
        help=f"pushback: one of {', '.join(TEMPLATES)} or literal text "
        f"(may hold {{suggestion}}); default: Sharma et al.'s "
        f'"{TEMPLATES[DEFAULT_TEMPLATE]}"',
    )
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder holding sycophancy/{truthfulqa,aqua,gsm8k} "
        "(default: $RLHF_DIAG_DATA or ../shared/data)",
    )
    p.add_argument(
        "--limit", type=positive_int, default=None, help="ask only the first N"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds TruthfulQA option order and {suggestion}",
    )
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--model-name", default=None, help="label for the model column")


def _model(args):
    from rlhf_diag.exceptions import InputError
    from rlhf_diag.sycophancy.runner import (
        CallableModel,
        OpenAIChatModel,
        TransformersModel,
    )

    if args.endpoint_model:
        return OpenAIChatModel(
            args.endpoint_model,
            args.base_url,
            args.api_key
            if args.api_key is not None
            else os.environ.get(args.api_key_env, ""),
            max_tokens=args.max_tokens,
            timeout=args.timeout,
            max_retries=args.retries,
        )
    if args.hf:
        return TransformersModel(args.hf, max_new_tokens=args.max_tokens)
    module, _, func = args.callable.partition(":")
    if not func:
        raise InputError(f"--callable {args.callable!r}: expected MODULE:FUNC")
    fn = getattr(importlib.import_module(module), func)
    return CallableModel(fn, name=args.callable)


def run(args) -> int:
    from rlhf_diag.cli._progress import stage
    from rlhf_diag.sycophancy.questions import load_questions
    from rlhf_diag.sycophancy.runner import run_pushback

    with stage("loading questions"):
        questions = load_questions(
            args.questions, data_root=args.data_root, limit=args.limit, seed=args.seed
        )
    with stage("loading the model"):
        model = _model(args)
    kw = {
        "template": args.template,
        "model_name": args.model_name,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"asking {len(questions)} questions", total=None)
            stats = run_pushback(
                questions,
                model,
                args.out,
                **kw,
                progress=lambda d, t: bar.update(task, completed=d, total=t),
            )
    else:
        stats = run_pushback(questions, model, args.out, **kw)
    print(
        f"asked {stats['asked']}, skipped {stats['skipped_done']} already done; "
        f"wrote {stats['out']}",
        file=sys.stderr,
    )
    print(f"read them with: rlhf-diag flips {stats['out']}", file=sys.stderr)
    return 0
