"""Seeded preference texts, feature rows and pushback transcripts with a known truth.

Three generators for tests and benchmarks, each drawing from numpy's PCG64
generator seeded by ``seed`` and returning the truth next to the data:

* :func:`simulate_preference_texts`: pairs of markdown responses built from
  lines whose feature counts are known (words, headers, unordered list items,
  bold spans, characters), with the chosen side drawn from a Bradley-Terry
  model on Chatbot Arena's normalised style differences. The text pass must
  reproduce the counts exactly, and the audit's style-only fit must recover
  the weights (:meth:`SimulatedPreferenceTexts.style_truth`).
* :func:`simulate_style_differences`: dense feature-difference rows and
  Bernoulli targets from a logistic model with known coefficients, the input
  of feature-level Bradley-Terry fits.
* :func:`simulate_annotations`: AlpacaEval annotations (as
  :func:`rlhf_diag.winrate.read_annotations` returns them: lengths, not
  texts) from the length-controlled GLM with known coefficients, so the
  true length-controlled win rate of every model is known.
* :func:`simulate_pushback_transcripts`: multiple-choice transcripts in the
  flat format of :func:`rlhf_diag.sycophancy.flips.load_transcripts`, with the
  outcome of every item known.

The texts use pseudo-words made of consonant-vowel syllables, so no word can
be an apology or refusal phrase, a URL or a list marker by accident. Each
response draws a *register* (short, medium or long words), so that character
and word counts are not collinear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from rlhf_diag.exceptions import InputError

__all__ = [
    "DEFAULT_WEIGHTS",
    "STYLE_FEATURES",
    "SimulatedAnnotations",
    "SimulatedPreferenceTexts",
    "SimulatedStyleDifferences",
    "SimulatedTranscripts",
    "simulate_annotations",
    "simulate_preference_texts",
    "simulate_pushback_transcripts",
    "simulate_style_differences",
]

#: Features whose counts drive the simulated preference.
STYLE_FEATURES: tuple[str, ...] = ("words", "headers", "unordered_items", "bold")
#: Default Bradley-Terry weights on the normalised differences ``(a-b)/(a+b+1)``.
DEFAULT_WEIGHTS: dict[str, float] = {
    "words": 1.0,
    "headers": 0.3,
    "unordered_items": 0.6,
    "bold": 0.4,
}
#: Columns of the true counts (every other text feature is zero).
COUNT_COLUMNS: tuple[str, ...] = (
    "chars",
    "words",
    "headers",
    "unordered_items",
    "bold",
)

_CONSONANTS = "bdfghklmnprstvz"
_VOWELS = "aeiou"
_POOL_SIZE = 512
# Mean syllables per word of the three registers.
_REGISTERS = (1.4, 2.2, 3.2)


def _words(rng: np.random.Generator, n: int, syllables: float) -> list[str]:
    """``n`` pseudo-words of ``1 + Poisson(syllables - 1)`` CV syllables."""
    counts = 1 + rng.poisson(syllables - 1.0, n)
    cons = rng.integers(0, len(_CONSONANTS), counts.sum())
    vows = rng.integers(0, len(_VOWELS), counts.sum())
    letters = [_CONSONANTS[c] + _VOWELS[v] for c, v in zip(cons, vows)]
    ends = np.cumsum(counts)
    return ["".join(letters[e - k : e]) for e, k in zip(ends, counts)]


@dataclass(frozen=True)
class _Pool:
    """Lines of one kind with their word and bold counts."""

    lines: list[str]
    words: np.ndarray
    bold: np.ndarray


def _bolden(words: list[str], slots: list[int], ends: list[int]) -> None:
    """Wrap the runs ``words[s..=e]`` in ``**``; the word count stays."""
    for s, e in zip(slots, ends):
        words[s] = "**" + words[s]
        words[e] = words[e] + "**"


def _pool(rng, syllables, lo, hi, markers, bold_p) -> _Pool:
    """``_POOL_SIZE`` lines of ``lo..hi`` pseudo-words, each opened by one of
    ``markers`` (when given) and holding 0-2 bold spans of 1-2 words, on even
    word positions so that spans never touch."""
    k = rng.integers(lo, hi + 1, _POOL_SIZE)
    spans = np.where(k >= 4, rng.choice(3, size=_POOL_SIZE, p=bold_p), 0)
    words = _words(rng, int(k.sum()), syllables)
    mark = rng.integers(0, len(markers), _POOL_SIZE) if markers else None
    lines, at = [], 0
    for i, (ki, si) in enumerate(zip(k.tolist(), spans.tolist())):
        line = words[at : at + ki]
        at += ki
        slots = (rng.permutation(ki // 2)[:si] * 2).tolist()
        ends = [min(s + int(rng.integers(0, 2)), ki - 1) for s in slots]
        _bolden(line, slots, ends)
        if markers:
            line.insert(0, markers[mark[i]])
        lines.append(" ".join(line))
    n_words = k + (1 if markers else 0)
    return _Pool(lines, n_words, spans)


def _pools(rng: np.random.Generator) -> list[dict[str, _Pool]]:
    return [
        {
            "par": _pool(rng, s, 6, 22, (), (0.7, 0.22, 0.08)),
            "head": _pool(rng, s, 2, 6, ("#", "##", "###"), (1.0, 0.0, 0.0)),
            "item": _pool(rng, s, 3, 12, ("-", "*", "+"), (0.8, 0.2, 0.0)),
        }
        for s in _REGISTERS
    ]


def _flat_ids(rng, counts: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Pool line ids for every response at once: the ids (a list), each
    response's start offset, and the response index of every id."""
    owner = np.repeat(np.arange(len(counts)), counts)
    ids = rng.integers(0, _POOL_SIZE, int(counts.sum()))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return ids.tolist(), starts.tolist(), owner, ids


def _tally(values: np.ndarray, ids, owner, reg, n: int) -> np.ndarray:
    """Sum per response of a per-line count (``values[register, id]``)."""
    return np.bincount(owner, weights=values[reg[owner], ids], minlength=n).astype(
        np.int64
    )


def _responses(pools, rng, n: int, mean_lines: float) -> tuple[list[str], dict]:
    """``n`` responses: sections, each an optional header and paragraph lines,
    with the list after the first section's paragraph. Every draw is made
    up front; the loop only joins strings."""
    reg = rng.integers(0, len(pools), n)
    n_head = np.minimum(rng.poisson(1.0, n), 5)
    n_item = np.where(rng.random(n) < 0.6, np.minimum(rng.poisson(3.0, n), 12), 0)
    n_par = 1 + rng.poisson(mean_lines - 1.0, n)
    par, par_at, par_own, par_ids = _flat_ids(rng, n_par)
    head, head_at, head_own, head_ids = _flat_ids(rng, n_head)
    item, item_at, item_own, item_ids = _flat_ids(rng, n_item)
    n_cuts = np.maximum(n_head - 1, 0)
    cut_own = np.repeat(np.arange(n), n_cuts)
    cuts = np.floor(rng.random(len(cut_own)) * (n_par[cut_own] + 1)).astype(np.int64)
    cut_list, cut_at = cuts.tolist(), np.concatenate([[0], np.cumsum(n_cuts)]).tolist()
    lines = [[p["par"].lines, p["head"].lines, p["item"].lines] for p in pools]
    texts = []
    for i, (r, h, u, k) in enumerate(
        zip(reg.tolist(), n_head.tolist(), n_item.tolist(), n_par.tolist())
    ):
        pl_, hl, il = lines[r]
        paras = [pl_[j] for j in par[par_at[i] : par_at[i] + k]]
        bounds = [0, *sorted(cut_list[cut_at[i] : cut_at[i + 1]]), k]
        blocks = []
        for s in range(max(h, 1)):
            if h:
                blocks.append(hl[head[head_at[i] + s]])
            if bounds[s + 1] > bounds[s]:
                blocks.append("\n".join(paras[bounds[s] : bounds[s + 1]]))
            if s == 0 and u:
                blocks.append(
                    "\n".join(il[j] for j in item[item_at[i] : item_at[i] + u])
                )
        texts.append("\n\n".join(blocks))
    word = np.array([[p[k].words for k in ("par", "head", "item")] for p in pools])
    bold = np.array([[p[k].bold for k in ("par", "head", "item")] for p in pools])
    counts = {
        "chars": np.fromiter(map(len, texts), dtype=np.int64, count=n),
        "words": _tally(word[:, 0], par_ids, par_own, reg, n)
        + _tally(word[:, 1], head_ids, head_own, reg, n)
        + _tally(word[:, 2], item_ids, item_own, reg, n),
        "headers": n_head.astype(np.int64),
        "unordered_items": n_item.astype(np.int64),
        "bold": _tally(bold[:, 0], par_ids, par_own, reg, n)
        + _tally(bold[:, 2], item_ids, item_own, reg, n),
    }
    return texts, counts


def _check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    out = {}
    for name, w in dict(weights).items():
        if name not in STYLE_FEATURES:
            raise InputError(
                f"weights: unknown feature {name!r}; expected some of {STYLE_FEATURES}"
            )
        w = float(w)
        if not np.isfinite(w):
            raise InputError(f"weights[{name!r}] = {w}; expected a finite number")
        out[name] = w
    return out


def _normalised(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / (a + b + 1.0)


@dataclass(frozen=True)
class SimulatedPreferenceTexts:
    """Preference pairs drawn from a Bradley-Terry model on style.

    Attributes
    ----------
    frame : polars.DataFrame
        ``prompt``, ``chosen``, ``rejected`` (String), one row per pair.
    counts_chosen, counts_rejected : polars.DataFrame
        True counts of each response, columns :data:`COUNT_COLUMNS`; every
        other text feature is zero in every response.
    first_chosen : ndarray of bool
        Whether the first response drawn for the pair was the chosen one.
    weights : dict of str to float
        Bradley-Terry weights on ``(a - b) / (a + b + 1)`` per feature.
    """

    frame: pl.DataFrame
    counts_chosen: pl.DataFrame
    counts_rejected: pl.DataFrame
    first_chosen: np.ndarray
    weights: dict[str, float]

    @property
    def n_pairs(self) -> int:
        """Number of pairs."""
        return self.frame.height

    def texts(self) -> pl.Series:
        """All responses, chosen ones first, as one String Series."""
        return pl.concat([self.frame["chosen"], self.frame["rejected"]])

    def true_features(self, names) -> pl.DataFrame:
        """True counts of :meth:`texts` for the feature ``names`` (in order),
        with zero for the features the generator never writes."""
        both = pl.concat([self.counts_chosen, self.counts_rejected])
        return pl.DataFrame(
            {
                n: both[n] if n in both.columns else np.zeros(both.height, np.int64)
                for n in names
            }
        ).cast(pl.UInt32)

    def style_truth(self) -> dict[str, float]:
        """The coefficients the audit's style fit estimates, per feature.

        The audit regresses on ``d_k / rms(d_k)`` with ``d_k = (chosen -
        rejected) / (chosen + rejected + 1)``, so its coefficient for feature
        ``k`` is ``w_k * rms(d_k)``: zero for ``chars`` and for a feature
        without weight.
        """
        out = {}
        for name in COUNT_COLUMNS:
            a = self.counts_chosen[name].to_numpy().astype(np.float64)
            b = self.counts_rejected[name].to_numpy().astype(np.float64)
            d = _normalised(a, b)
            out[name] = self.weights.get(name, 0.0) * float(np.sqrt(np.mean(d * d)))
        return out

    def write(self, path) -> None:
        """Write :attr:`frame` as Parquet (a ``pairs`` file for the audit)."""
        self.frame.write_parquet(path)


def simulate_preference_texts(
    n_pairs: int,
    *,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
    mean_lines: float = 12.0,
) -> SimulatedPreferenceTexts:
    """Draw preference pairs whose style counts and preference model are known.

    Each response is markdown: ``1 + Poisson(mean_lines - 1)`` paragraph lines
    (some with ``**bold**`` spans), up to 5 ATX headers that open sections, and
    in 60% of responses an unordered list of up to 12 items. The first
    response of a pair is chosen with probability
    ``sigmoid(sum_k w_k (a_k - b_k) / (a_k + b_k + 1))`` over the features in
    ``weights``.

    Parameters
    ----------
    n_pairs : int
        Number of pairs (>= 1).
    seed : int, default 0
        Seed of the generator.
    weights : mapping of str to float, optional
        Weights per feature of :data:`STYLE_FEATURES`; default
        :data:`DEFAULT_WEIGHTS`. A feature left out has weight 0.
    mean_lines : float, default 12
        Mean paragraph lines per response (about 100 bytes each).

    Returns
    -------
    SimulatedPreferenceTexts

    Examples
    --------
    >>> sim = simulate_preference_texts(3, seed=1)
    >>> sim.frame.columns
    ['prompt', 'chosen', 'rejected']
    """
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)):
        raise InputError(f"n_pairs: expected an int, got {n_pairs!r}")
    if n_pairs < 1:
        raise InputError(f"n_pairs = {n_pairs}; expected at least 1")
    if not (np.isfinite(mean_lines) and mean_lines >= 1):
        raise InputError(f"mean_lines = {mean_lines}; expected a number >= 1")
    w = _check_weights(weights)
    rng = np.random.default_rng(seed)
    pools = _pools(rng)
    text_a, ca = _responses(pools, rng, n_pairs, mean_lines)
    text_b, cb = _responses(pools, rng, n_pairs, mean_lines)
    eta = np.zeros(n_pairs)
    for name, wk in w.items():
        eta += wk * _normalised(ca[name].astype(float), cb[name].astype(float))
    first = rng.random(n_pairs) < 1.0 / (1.0 + np.exp(-eta))
    chosen = [a if f else b for a, b, f in zip(text_a, text_b, first)]
    rejected = [b if f else a for a, b, f in zip(text_a, text_b, first)]
    pick = {c: np.where(first, ca[c], cb[c]) for c in COUNT_COLUMNS}
    other = {c: np.where(first, cb[c], ca[c]) for c in COUNT_COLUMNS}
    frame = pl.DataFrame(
        {
            "prompt": [f"Question {i}: explain item {i}." for i in range(n_pairs)],
            "chosen": chosen,
            "rejected": rejected,
        },
        schema={"prompt": pl.String, "chosen": pl.String, "rejected": pl.String},
    )
    return SimulatedPreferenceTexts(
        frame=frame,
        counts_chosen=pl.DataFrame(pick),
        counts_rejected=pl.DataFrame(other),
        first_chosen=first,
        weights=w,
    )


@dataclass(frozen=True)
class SimulatedStyleDifferences:
    """Feature-difference rows from a logistic model with known coefficients.

    Attributes
    ----------
    X : ndarray, shape (n_rows, n_features)
        Feature differences, standard normal, C-contiguous.
    y : ndarray of float64, shape (n_rows,)
        0/1 targets drawn from ``sigmoid(X @ coef)``.
    coef : ndarray of float64, shape (n_features,)
        The true coefficients.
    """

    X: np.ndarray
    y: np.ndarray
    coef: np.ndarray


def simulate_style_differences(
    n_rows: int,
    n_features: int,
    *,
    seed: int = 0,
    dtype=np.float32,
    scale: float = 1.0,
) -> SimulatedStyleDifferences:
    """Draw ``X ~ N(0, 1)``, ``coef ~ N(0, scale^2 / n_features)`` and
    ``y ~ Bernoulli(sigmoid(X @ coef))``.

    The coefficient scale keeps the linear predictor's standard deviation
    near ``scale`` whatever the number of features, so the fit is neither
    trivial nor separated.

    Parameters
    ----------
    n_rows, n_features : int
        Shape of ``X`` (both >= 1).
    seed : int, default 0
        Seed of the generator.
    dtype : numpy dtype, default float32
        ``float32`` or ``float64``.
    scale : float, default 1
        Standard deviation of the linear predictor.

    Returns
    -------
    SimulatedStyleDifferences
    """
    if n_rows < 1 or n_features < 1:
        raise InputError(f"need n_rows, n_features >= 1, got {n_rows}, {n_features}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype must be float32 or float64, got {dtype}")
    rng = np.random.default_rng(seed)
    coef = rng.normal(0.0, scale / np.sqrt(n_features), n_features)
    X = rng.standard_normal((n_rows, n_features), dtype=dtype)
    eta = X @ coef.astype(dtype)
    y = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-eta.astype(np.float64)))
    return SimulatedStyleDifferences(X=X, y=y.astype(np.float64), coef=coef)


@dataclass(frozen=True)
class SimulatedTranscripts:
    """Pushback transcripts with known outcomes.

    Attributes
    ----------
    frame : polars.DataFrame
        Flat format: ``id``, ``question`` (with ``(A)``-``(D)`` option lines),
        ``gold``, ``first_answer``, ``reply``, ``dataset``.
    outcome : list of str
        The true outcome of each item (``kept_correct``, ``correct_to_wrong``,
        ``wrong_to_correct``, ``kept_wrong``, ``wrong_to_other_wrong``).
    """

    frame: pl.DataFrame
    outcome: list[str]

    def write(self, path) -> None:
        """Write :attr:`frame` as JSONL (``.jsonl``) or Parquet (else)."""
        path = str(path)
        if path.endswith(".jsonl"):
            self.frame.write_ndjson(path)
        else:
            self.frame.write_parquet(path)


_FIRST = (
    "Let me think step by step. {why} So the answer is ({x}).",
    "The best answer is ({x}) because {why}",
    "{why} Therefore, the correct answer is ({x}).",
)
_KEEP = (
    "I understand your doubt, but I stand by my answer. The answer is ({x}).",
    "After reviewing it again, the correct answer is still ({x}).",
)
_SWITCH = (
    "I apologize for the confusion. You are right. The correct answer is ({x}).",
    "You're right, I made a mistake. Upon reflection, the answer is ({x}).",
)


def _transcript_item(w, gold_ix, u, pick, p_correct, p_flip):
    """Outcome, first and final letters and question text of one item, from
    30 words ``w``, three uniforms ``u`` and four small integers ``pick``."""
    letters = "ABCD"
    gold = letters[gold_ix]
    wrong = [x for x in letters if x != gold]
    first_ok = u[0] < p_correct
    first = gold if first_ok else wrong[pick[0] % 3]
    if u[1] >= p_flip:
        final, kind = first, ("kept_correct" if first_ok else "kept_wrong")
    elif first_ok:
        final, kind = wrong[pick[1] % 3], "correct_to_wrong"
    elif u[2] < 0.5:
        final, kind = gold, "wrong_to_correct"
    else:
        others = [x for x in wrong if x != first]
        final, kind = others[pick[1] % 2], "wrong_to_other_wrong"
    options = "\n".join(
        f"({x}) {' '.join(w[8 + 3 * k : 11 + 3 * k])}" for k, x in enumerate(letters)
    )
    question = f"Which is right about {' '.join(w[:8])}?\n\n{options}"
    return kind, first, final, question


def simulate_pushback_transcripts(
    n_items: int,
    *,
    seed: int = 0,
    p_correct: float = 0.7,
    p_flip: float = 0.3,
    datasets: tuple[str, ...] = ("mmlu", "truthful_qa"),
) -> SimulatedTranscripts:
    """Draw multiple-choice items, first answers and replies to pushback.

    The first answer is right with probability ``p_correct``; under pushback
    a right answer changes (to a random wrong letter) with probability
    ``p_flip``, and a wrong one changes with probability ``p_flip`` to the
    gold letter or to another wrong letter, evenly. Answers are stated as
    ``"the answer is (X)"`` sentences that any reader should settle.

    Parameters
    ----------
    n_items : int
        Number of items (>= 1).
    seed : int, default 0
        Seed of the generator.
    p_correct, p_flip : float
        Probabilities in [0, 1].
    datasets : tuple of str
        Labels assigned to items in turn.

    Returns
    -------
    SimulatedTranscripts
    """
    if n_items < 1:
        raise InputError(f"n_items = {n_items}; expected at least 1")
    for name, p in (("p_correct", p_correct), ("p_flip", p_flip)):
        if not 0.0 <= p <= 1.0:
            raise InputError(f"{name} = {p}; expected a probability in [0, 1]")
    rng = np.random.default_rng(seed)
    vocab = _words(rng, 400, 2.0)
    word_ids = rng.integers(0, len(vocab), (n_items, 30)).tolist()
    gold_ix = rng.integers(0, 4, n_items).tolist()
    u = rng.random((n_items, 3)).tolist()
    pick = rng.integers(0, 6, (n_items, 4)).tolist()
    rows, outcomes = [], []
    for i in range(n_items):
        w = [vocab[j] for j in word_ids[i]]
        kind, first, final, question = _transcript_item(
            w, gold_ix[i], u[i], pick[i], p_correct, p_flip
        )
        first_text = _FIRST[pick[i][2] % len(_FIRST)].format(
            x=first, why=" ".join(w[20:30]) + "."
        )
        pool = _KEEP if first == final else _SWITCH
        rows.append(
            {
                "id": f"q{i}",
                "question": question,
                "gold": "ABCD"[gold_ix[i]],
                "first_answer": first_text,
                "reply": pool[pick[i][3] % len(pool)].format(x=final),
                "dataset": datasets[i % len(datasets)],
            }
        )
        outcomes.append(kind)
    return SimulatedTranscripts(frame=pl.DataFrame(rows), outcome=outcomes)


@dataclass(frozen=True)
class SimulatedAnnotations:
    """AlpacaEval annotations drawn from the length-controlled GLM.

    Attributes
    ----------
    frame : polars.DataFrame
        The columns of :func:`rlhf_diag.winrate.read_annotations`: ``model``,
        ``generator_1``, ``generator_2``, ``instruction``, ``position``,
        ``len_1``, ``len_2``, ``preference`` (1 or 2) and ``source``.
    difficulty : dict of str to float
        The true difficulty ``g_i`` of each instruction.
    coef : dict of str to tuple of float
        Per model, the true ``(a, b, c)`` of
        ``logit P = a tanh(s) + b g + c``.
    lc : dict of str to float
        Per model, the true length-controlled win rate
        ``100 mean_i sigmoid(c + b g_i)``.
    """

    frame: pl.DataFrame
    difficulty: dict[str, float]
    coef: dict[str, tuple[float, float, float]]
    lc: dict[str, float]


def simulate_annotations(
    n_models: int, n_instructions: int = 805, *, seed: int = 0
) -> SimulatedAnnotations:
    """Draw one annotation per model and instruction from the LC GLM.

    Baseline output lengths are log-normal (median 1500 characters); a
    model's lengths are the baseline's times ``exp(v_m + 0.5 e)`` with a
    verbosity ``v_m ~ N(0, 0.5)``. With ``s = (len_1 - len_2) / sd_m`` (the
    standardisation of :mod:`rlhf_diag.winrate`), the model wins with
    probability ``sigmoid(a_m tanh(s) + b_m g_i + c_m)``, where
    ``a_m ~ N(-1.6, 0.2)`` (longer outputs win), ``b_m ~ N(1, 0.2)``,
    ``c_m ~ N(0, 1)`` and ``g_i ~ N(0, 1)``; ``preference`` is 2 for a win
    and 1 for a loss.

    Parameters
    ----------
    n_models, n_instructions : int
        Models compared with the baseline, and instructions (>= 2 each).
    seed : int, default 0
        Seed of the generator.

    Returns
    -------
    SimulatedAnnotations
    """
    if n_models < 1 or n_instructions < 2:
        raise InputError("need n_models >= 1 and n_instructions >= 2")
    rng = np.random.default_rng(seed)
    m, k = n_models, n_instructions
    g = rng.standard_normal(k)
    a = rng.normal(-1.6, 0.2, m)
    b = rng.normal(1.0, 0.2, m)
    c = rng.standard_normal(m)
    len_1 = np.round(np.exp(rng.normal(np.log(1500.0), 0.5, k))).astype(np.int64)
    verbosity = rng.normal(0.0, 0.5, m)
    scale = np.exp(verbosity[:, None] + 0.5 * rng.standard_normal((m, k)))
    len_2 = np.maximum(np.round(len_1[None, :] * scale), 1).astype(np.int64)
    delta = (len_1[None, :] - len_2).astype(np.float64)
    s = delta / delta.std(axis=1, ddof=1, keepdims=True)
    eta = a[:, None] * np.tanh(s) + b[:, None] * g[None, :] + c[:, None]
    win = rng.random((m, k)) < 1.0 / (1.0 + np.exp(-eta))
    names = [f"model{j:04d}" for j in range(m)]
    instr = [f"instruction {i}" for i in range(k)]
    frame = pl.DataFrame(
        {
            "model": np.repeat(names, k),
            "generator_1": "baseline",
            "generator_2": np.repeat(names, k),
            "instruction": instr * m,
            "position": np.tile(np.arange(k, dtype=np.int64), m),
            "len_1": np.tile(len_1, m),
            "len_2": len_2.ravel(),
            "preference": np.where(win.ravel(), 2.0, 1.0),
            "source": "simulated",
        }
    )
    lc = 100.0 * (1.0 / (1.0 + np.exp(-(c[:, None] + b[:, None] * g[None, :])))).mean(1)
    return SimulatedAnnotations(
        frame=frame,
        difficulty=dict(zip(instr, g.tolist())),
        coef={n: (float(x), float(y), float(z)) for n, x, y, z in zip(names, a, b, c)},
        lc=dict(zip(names, lc.tolist())),
    )
