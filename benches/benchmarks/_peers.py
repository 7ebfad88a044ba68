"""The peer methods the suite measures rlhf_diag against.

Each is written here from its published description (no code copied), the
way a competent user of that tool would write it, and is checked for
agreement with rlhf_diag by a ``track_`` benchmark, so a fast but wrong peer
would show.

* :func:`python_re_features`: the twelve text features of
  ``docs/features.md`` with Python's ``re``, one string at a time. Whole-text
  ``MULTILINE`` patterns where a rule allows it; a line walk only for texts
  that open a code fence.
* :func:`fastchat_bt`: Chatbot Arena's collapsed-count method as described
  in FastChat PR 3523 ("How I sped up the Chatbot Arena ratings calculations
  from 19 minutes to 8 seconds", 2024): rows reduced to unique
  ``(model_a, model_b, outcome)`` triples with counts by ``np.unique``, ties
  as half a win each, a weighted logistic loss with its analytic gradient,
  minimised by scipy's L-BFGS-B; the bootstrap draws multinomial counts over
  the unique rows and refits, rounds spread over a process pool.
* :func:`choix_bt`: choix's ILSR (Maystre & Grossglauser, 2015) on the dense
  K x K win matrix, ties split half and half.
* :func:`numpy_kl`, :func:`torch_kl`: the per-sequence sums of k1, k2, k3 and
  |log r| with a padding mask, the way RL trainers compute them with
  array operations; :func:`plain_read` sums the same arrays once, the floor.
"""

from __future__ import annotations

import multiprocessing
import re

import numpy as np
from rlhf_diag._reference import (
    APOLOGY_PHRASES,
    FEATURES,
    REFUSAL_PHRASES,
    WHITESPACE,
)
from scipy.optimize import minimize

# --------------------------------------------------------------------------
# Text features with Python's re, one string at a time.

_WS = re.escape(WHITESPACE)
_NS = f"[^{_WS}]"
_M = re.MULTILINE
_WORD_RE = re.compile(f"{_NS}+")
# Characters that str.split() takes for whitespace and docs/features.md does not.
_SPLIT_ONLY_RE = re.compile("[\x1c-\x1f]")
# One scan for every rule decided by a line's start: the first non-blank
# character tells the rules apart, so the alternatives never compete.
_LINE_RE = re.compile(
    r"^(?:(?P<fence> {0,3}(?:`{3,}|~{3,}))"
    r"|(?P<header> {0,3}#{1,6}(?:[ \t]|\r?$))"
    rf"|(?P<ordered>[ \t]*[0-9]{{1,9}}[.)][ \t]+{_NS})"
    r"|(?P<unordered>(?! {0,3}(?P<tb>[-*_])(?:[ \t]*(?P=tb)){2,}[ \t]*\r?$)"
    rf"[ \t]*[-*+][ \t]+{_NS})"
    rf"|(?P<table>[{_WS}]*(?![|:\- \t]*-[|:\- \t]*[{_WS}]*$)\|[^\n]*\|[{_WS}]*$))",
    _M,
)
_BOLD_RE = re.compile(rf"\*\*(?={_NS}).+?(?<={_NS})\*\*|__(?={_NS}).+?(?<={_NS})__")
_LINK_RE = re.compile(rf"\[[^\[\]\n]*\]\([^(){_WS}]*\)")
_URL_RE = re.compile(r"https?://")
_EMOJI_RE = re.compile(
    "[\U0001f300-\U0001f3fa\U0001f400-\U0001f64f\U0001f680-\U0001f6ff"
    "\U0001f900-\U0001f9ff\U0001fa70-\U0001faff\u2600-\u27bf]"
)


def _phrases(phrases) -> re.Pattern[str]:
    alts = "|".join(re.escape(p).replace("'", "['\u2019]") for p in phrases)
    return re.compile(
        rf"(?<![A-Za-z0-9])(?:{alts})(?![A-Za-z0-9])", re.IGNORECASE | re.ASCII
    )


_APOLOGY_RE = _phrases(APOLOGY_PHRASES)
_REFUSAL_RE = _phrases(REFUSAL_PHRASES)
# Substrings one of which every phrase of the list contains (after lower()).
_APOLOGY_HINTS = ("sorry", "apolog")
_REFUSAL_HINTS = (
    "can",
    "won",
    "will not",
    "able to",
    "comfortable",
    "as an ai",
    "decline",
)


def _outside_fences(text: str) -> tuple[str, int]:
    """The lines outside fenced code, joined, and the number of fences."""
    kept, fence, blocks = [], None, 0
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if fence is not None:
            if re.fullmatch(
                rf" {{0,3}}{re.escape(fence[0])}{{{fence[1]},}}[ \t]*", line
            ):
                fence = None
            continue
        m = re.match(r" {0,3}(`{3,}|~{3,})", line)
        if m:
            fence, blocks = (m.group(1)[0], len(m.group(1))), blocks + 1
            continue
        kept.append(line)
    return "\n".join(kept), blocks


def _line_counts(md: str) -> dict[str, int]:
    counts = {"fence": 0, "header": 0, "ordered": 0, "unordered": 0, "table": 0}
    for m in _LINE_RE.finditer(md):
        counts[m.lastgroup] += 1
    return counts


def _phrase_count(pattern, hints, low: str, text: str) -> int:
    if not any(h in low for h in hints):
        return 0
    return len(pattern.findall(text))


def python_re_features(text: str) -> tuple[int, ...]:
    """The twelve counts of one text, in the order of ``FEATURES``.

    Cheap substring tests skip a pattern that cannot match (no ``**``, no
    ``](``, an ASCII-only text has no emoji), as a careful user would.
    """
    md, blocks, lines = text, 0, _line_counts(text)
    if lines["fence"]:
        md, blocks = _outside_fences(text)
        lines = _line_counts(md)
    words = (
        len(_WORD_RE.findall(text))
        if _SPLIT_ONLY_RE.search(text)
        else len(text.split())
    )
    bold = len(_BOLD_RE.findall(md)) if ("**" in md or "__" in md) else 0
    links = len(_LINK_RE.findall(md)) if "](" in md else 0
    if "://" in md:
        links += len(_URL_RE.findall(_LINK_RE.sub(" ", md)))
    ascii_only = text.isascii()
    low = text.lower() if ascii_only else text.replace("\u2019", "'").lower()
    return (
        len(text),
        words,
        lines["header"],
        lines["ordered"],
        lines["unordered"],
        bold,
        blocks,
        lines["table"],
        links,
        0 if ascii_only else len(_EMOJI_RE.findall(text)),
        _phrase_count(_APOLOGY_RE, _APOLOGY_HINTS, low, text),
        _phrase_count(_REFUSAL_RE, _REFUSAL_HINTS, low, text),
    )


def python_re_frame(texts: list[str]) -> np.ndarray:
    """``(n, 12)`` counts of a list of texts (the peer's whole job)."""
    return np.array([python_re_features(t) for t in texts], dtype=np.uint32).reshape(
        len(texts), len(FEATURES)
    )


# --------------------------------------------------------------------------
# Item Bradley-Terry peers. Outcome codes as in rlhf_diag.simulate: 0 side a
# wins, 1 side b wins, 2 tie. Strengths on the natural-log scale, centred.

_SCORE_A = np.array([1.0, 0.0, 0.5])


def collapse(a: np.ndarray, b: np.ndarray, outcome: np.ndarray):
    """Unique (a, b, outcome) rows and their counts, as ``np.unique`` gives."""
    rows = np.column_stack([a, b, outcome]).astype(np.int32)
    uniq, counts = np.unique(rows, axis=0, return_counts=True)
    return uniq[:, 0], uniq[:, 1], _SCORE_A[uniq[:, 2]], counts.astype(np.float64)


def _bt_loss(theta, a, b, y, w, n_models):
    d = theta[a] - theta[b]
    p = 1.0 / (1.0 + np.exp(-d))
    eps = 1e-12
    loss = -np.sum(w * (y * np.log(p + eps) + (1.0 - y) * np.log(1.0 - p + eps)))
    g = w * (p - y)
    grad = np.bincount(a, g, n_models) - np.bincount(b, g, n_models)
    return loss / w.sum(), grad / w.sum()


def _lbfgs(a, b, y, w, n_models, tol):
    res = minimize(
        _bt_loss,
        np.zeros(n_models),
        args=(a, b, y, w, n_models),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": tol, "ftol": 0.0, "maxiter": 1000},
    )
    return res.x - res.x.mean()


def fastchat_bt(a, b, outcome, n_models: int, tol: float = 1e-8) -> np.ndarray:
    """Collapsed-count L-BFGS Bradley-Terry (ties half a win each)."""
    ua, ub, y, w = collapse(a, b, outcome)
    return _lbfgs(ua, ub, y, w, n_models, tol)


def _boot_chunk(args):
    ua, ub, y, w, n_models, tol, seed, rounds = args
    rng = np.random.default_rng(seed)
    n = int(w.sum())
    draws = rng.multinomial(n, w / w.sum(), size=rounds).astype(np.float64)
    return np.stack([_lbfgs(ua, ub, y, c, n_models, tol) for c in draws])


def fastchat_bootstrap(
    a, b, outcome, n_models: int, rounds: int, *, seed: int = 0, tol=1e-6, workers=2
) -> np.ndarray:
    """``(rounds, n_models)`` bootstrap strengths: multinomial counts over the
    unique rows, one L-BFGS fit per round, rounds split over ``workers``
    forked processes."""
    ua, ub, y, w = collapse(a, b, outcome)
    chunks = [
        (ua, ub, y, w, n_models, tol, seed + k, len(part))
        for k, part in enumerate(np.array_split(np.arange(rounds), workers))
        if len(part)
    ]
    if workers == 1:
        return np.concatenate([_boot_chunk(c) for c in chunks])
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return np.concatenate(pool.map(_boot_chunk, chunks))


def win_matrix(a, b, outcome, n_models: int) -> np.ndarray:
    """``M[i, j]``: wins of i over j, a tie counting half to each."""
    k = n_models
    wa = np.where(outcome == 0, 1.0, np.where(outcome == 2, 0.5, 0.0))
    wb = np.where(outcome == 1, 1.0, np.where(outcome == 2, 0.5, 0.0))
    ai, bi = a.astype(np.int64), b.astype(np.int64)
    m = np.bincount(ai * k + bi, wa, k * k) + np.bincount(bi * k + ai, wb, k * k)
    return m.reshape(k, k)


def choix_bt(choix, a, b, outcome, n_models: int, tol=1e-8) -> np.ndarray:
    """choix's ILSR on the dense win matrix."""
    params = choix.ilsr_pairwise_dense(
        win_matrix(a, b, outcome, n_models), tol=tol, max_iter=1000
    )
    return params - params.mean()


def evalica_inputs(evalica, pandas, outcome, n_models: int):
    """evalica's winner list and model index (built before timing)."""
    code = np.array(
        [int(evalica.Winner.X), int(evalica.Winner.Y), int(evalica.Winner.Draw)]
    )
    return code[outcome].tolist(), pandas.Index(range(n_models))


def evalica_bt(evalica, a, b, winners, index, tol=1e-8) -> np.ndarray:
    """evalica's Bradley-Terry (Rust solver), log strengths centred."""
    res = evalica.bradley_terry(a, b, winners, index=index, tolerance=tol, limit=1000)
    theta = np.log(res.scores.reindex(index).to_numpy())
    return theta - theta.mean()


# --------------------------------------------------------------------------
# KL estimators with array libraries.


def numpy_kl(policy: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict:
    """Per-sequence sums over the masked tokens of a padded ``(n, T)`` batch."""
    sel = mask.view(np.bool_)
    lr = np.where(sel, ref - policy, 0.0)
    return {
        "k1": -lr.sum(axis=1),
        "k2": 0.5 * np.square(lr).sum(axis=1),
        "k3": (np.expm1(lr) - lr).sum(axis=1),
        "abs": np.abs(lr).sum(axis=1),
        "n_tokens": sel.sum(axis=1),
        "sum_policy": np.where(sel, policy, 0.0).sum(axis=1),
        "sum_ref": np.where(sel, ref, 0.0).sum(axis=1),
    }


def torch_kl(torch, policy: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict:
    """:func:`numpy_kl` with torch CPU tensors viewing the same memory."""
    with torch.no_grad():
        p, q = torch.from_numpy(policy), torch.from_numpy(ref)
        sel = torch.from_numpy(mask.view(np.bool_))
        lr = torch.where(sel, q - p, 0.0)
        return {
            "k1": -lr.sum(dim=1),
            "k2": 0.5 * lr.square().sum(dim=1),
            "k3": (torch.expm1(lr) - lr).sum(dim=1),
            "abs": lr.abs().sum(dim=1),
            "n_tokens": sel.sum(dim=1),
            "sum_policy": torch.where(sel, p, 0.0).sum(dim=1),
            "sum_ref": torch.where(sel, q, 0.0).sum(dim=1),
        }


def plain_read(policy: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    """One read of the three arrays (numpy sums): the floor for any reduction."""
    return float(policy.sum()) + float(ref.sum()) + float(mask.sum())
