"""Question sets for the pushback runner: TruthfulQA (multiple choice), AQuA,
GSM8K and any file in the flat format.

Every loader returns :class:`Question` objects whose ``prompt`` is the text
sent to the model: the question, its ``(A) ...`` option lines when it has
options, and an instruction on how to state the answer. TruthfulQA's
``mc1_targets`` list the correct answer first, so its options are shuffled
with a generator seeded from ``seed`` and the question's hash: the same
seed gives the same order on every run (the runner's resume relies on it).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_diag.exceptions import DataFormatError, InputError
from rlhf_diag.io import read_table
from rlhf_diag.sycophancy.extract import (
    LETTERS,
    answer_kind,
    canonical_number,
    gold_letter_problem,
)

#: Named question sets and their files under the data root.
QUESTION_SETS = {
    "truthfulqa": "sycophancy/truthfulqa/mc_task.json",
    "aqua": "sycophancy/aqua/test.json",
    "gsm8k": "sycophancy/gsm8k/test.jsonl",
}
CHOICE_INSTRUCTION = (
    'Answer with the letter of the best option, in the format "The answer is (X)."'
)
NUMBER_INSTRUCTION = 'Think step by step, then end with "The answer is N."'
TEXT_INSTRUCTION = 'Answer briefly, in the format "The answer is ...".'


@dataclass(frozen=True)
class Question:
    """One question to ask: the prompt, its options and gold answer."""

    id: str
    dataset: str
    question: str
    gold: str
    kind: str
    options: dict = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        if self.options:
            lines = "\n".join(f"({k}) {v}" for k, v in self.options.items())
            return (
                f"{self.question}\n\nAnswer choices:\n{lines}\n\n{CHOICE_INSTRUCTION}"
            )
        if self.kind == "number":
            return f"{self.question}\n\n{NUMBER_INSTRUCTION}"
        return f"{self.question}\n\n{TEXT_INSTRUCTION}"


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def default_data_root() -> Path:
    """``RLHF_DIAG_DATA`` if set, else ``../shared/data`` from the working
    directory (the layout of this project's checkouts)."""
    env = os.environ.get("RLHF_DIAG_DATA")
    return Path(env) if env else Path.cwd().parent / "shared" / "data"


def _truthfulqa(path: Path, seed: int) -> list[Question]:
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    out = []
    for rec in data:
        targets = rec.get("mc1_targets") or {}
        answers = list(targets)
        correct = [a for a, v in targets.items() if v == 1]
        if len(correct) != 1 or len(answers) > len(LETTERS):
            continue
        qid = _hash(rec["question"])
        random.Random(f"{seed}:{qid}").shuffle(answers)
        options = {LETTERS[i]: a for i, a in enumerate(answers)}
        gold = LETTERS[answers.index(correct[0])]
        out.append(
            Question(qid, "truthfulqa", rec["question"], gold, "choice", options)
        )
    return out


def _aqua(rows: list[dict]) -> list[Question]:
    out = []
    for rec in rows:
        options = {}
        for opt in rec["options"]:
            letter, _, text = str(opt).partition(")")
            options[letter.strip().upper()] = text.strip()
        out.append(
            Question(
                _hash(rec["question"]),
                "aqua",
                rec["question"],
                str(rec["correct"]).strip().upper(),
                "choice",
                options,
            )
        )
    return out


def _gsm8k(rows: list[dict]) -> list[Question]:
    out = []
    for rec in rows:
        gold = canonical_number(str(rec["answer"]).rsplit("####", 1)[-1])
        if gold is None:
            raise DataFormatError(
                f"GSM8K row without '#### <number>': {rec['question'][:60]}"
            )
        out.append(
            Question(_hash(rec["question"]), "gsm8k", rec["question"], gold, "number")
        )
    return out


def _flat(rows: list[dict], name: str) -> list[Question]:
    from rlhf_diag.sycophancy.flips import _options_of

    out = []
    for i, rec in enumerate(rows):
        if rec.get("question") is None or rec.get("gold") is None:
            raise InputError(f"{name} row {i}: need 'question' and 'gold'")
        question = str(rec["question"])
        options = _options_of(rec, "") if rec.get("options") is not None else {}
        problem = gold_letter_problem(rec["gold"], options)
        if problem is not None:
            raise InputError(f"{name} row {i}: {problem} (gold {rec['gold']!r})")
        kind = answer_kind(rec["gold"], options)
        out.append(
            Question(
                str(rec.get("id") or _hash(question)),
                str(rec.get("dataset") or name),
                question,
                str(rec["gold"]).strip(),
                kind,
                options,
            )
        )
    return out


def load_questions(
    source: str | Path,
    *,
    data_root: str | Path | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[Question]:
    """Load a question set by name (``truthfulqa``, ``aqua``, ``gsm8k``, found
    under ``data_root``) or from a file, detected by its fields: TruthfulQA's
    ``mc_task.json``, AQuA (``options`` + ``correct``), GSM8K (``answer``
    ending in ``#### N``), or the flat format (``question``, ``gold``,
    optional ``options`` and ``id``).

    Parameters
    ----------
    limit
        Keep the first ``limit`` questions (in file order).
    seed
        Seeds TruthfulQA's option order.
    """
    if str(source) in QUESTION_SETS:
        path = Path(data_root or default_data_root()) / QUESTION_SETS[str(source)]
    else:
        path = Path(source)
    if not path.is_file():
        hint = (
            f" (question set {source!r} is looked up under data_root, the CLI's "
            "--data-root; default $RLHF_DIAG_DATA or ../shared/data)"
            if str(source) in QUESTION_SETS
            else ""
        )
        raise DataFormatError(f"{path}: no such question file{hint}")
    if path.name == "mc_task.json":
        qs = _truthfulqa(path, seed)
    else:
        head = path.read_bytes().lstrip()[:1]
        fmt = "jsonl" if path.suffix == ".json" and head != b"[" else None
        rows = read_table(path, fmt).to_dicts()
        if not rows:
            raise DataFormatError(f"{path}: no questions")
        cols = set(rows[0])
        if {"options", "correct"} <= cols:
            qs = _aqua(rows)
        elif {"question", "answer"} <= cols and "gold" not in cols:
            qs = _gsm8k(rows)
        else:
            qs = _flat(rows, path.name.split(".")[0])
    return qs[:limit] if limit is not None else qs
