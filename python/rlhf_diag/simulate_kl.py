"""Seeded rollouts whose KL to the reference is known exactly.

Two truths for testing the KL estimators of :mod:`rlhf_diag.kl`:

* :func:`gaussian_estimator_table`: Schulman's example, q = N(0, 1)
  sampled, p = N(μ, 1) the reference. ``log r = μx − μ²/2`` is normal, so
  the mean and variance of k1, k2 and k3 have closed forms;
  :func:`gaussian_logprobs` draws the matching samples.
* :func:`categorical_model` / :func:`simulate_rollouts`: token sequences
  sampled position by position from a categorical policy whose logits,
  and its reference's, are known, so the exact per-position KL
  ``Σ_v π(v)(log π(v) − log π_ref(v))`` and the exact mean of k2 are known.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import special, stats

from rlhf_diag.exceptions import InputError

__all__ = [
    "CategoricalModel",
    "categorical_model",
    "gaussian_estimator_table",
    "gaussian_logprobs",
    "simulate_rollouts",
    "write_rollouts",
]


def gaussian_estimator_table(mu: float) -> dict[str, dict[str, float]]:
    """Bias and standard deviation of k1, k2, k3, relative to the true KL.

    With x ~ q = N(0, 1), p = N(μ, 1) and ``Y = log r = log p(x) −
    log q(x) = μx − μ²/2 ~ N(−μ²/2, μ²)``, KL(q‖p) = μ²/2 and

    * k1 = −Y: mean KL, variance μ²;
    * k2 = Y²/2: mean KL + μ⁴/8, variance μ⁴/2 + μ⁶/4;
    * k3 = e^Y − 1 − Y: mean KL (E e^Y = 1), variance e^{μ²} − 1 − μ²
      (using Cov(e^Y, Y) = μ² by Stein's lemma).

    Returns
    -------
    dict
        ``{"kl": μ²/2, "k1": {"bias": ..., "std": ...}, ...}`` with bias
        and std divided by the true KL, as in Schulman's table
        (J. Schulman, "Approximating KL Divergence", 2020).
    """
    mu = float(mu)
    if mu == 0 or not np.isfinite(mu):
        raise InputError(f"mu must be finite and non-zero, got {mu}")
    kl = mu * mu / 2
    m2 = mu * mu
    var = {
        "k1": m2,
        "k2": m2 * m2 / 2 + m2**3 / 4,
        "k3": float(np.expm1(m2)) - m2,
    }
    bias = {"k1": 0.0, "k2": m2 * m2 / 8, "k3": 0.0}
    out: dict[str, Any] = {"kl": kl}
    for k in ("k1", "k2", "k3"):
        out[k] = {"bias": bias[k] / kl, "std": float(np.sqrt(var[k])) / kl}
    return out


def gaussian_logprobs(n: int, mu: float, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-densities of x ~ N(0, 1) under q = N(0, 1) and p = N(μ, 1).

    Returns ``(log q(x), log p(x))``: the sampling ("policy") and the
    reference log-densities, for :func:`rlhf_diag.kl.estimate_kl`.
    """
    x = np.random.default_rng(seed).standard_normal(n)
    return stats.norm.logpdf(x), stats.norm.logpdf(x, loc=mu)


@dataclass(frozen=True)
class CategoricalModel:
    """Per-position categorical policy and reference over a vocabulary.

    Attributes
    ----------
    policy_logits, ref_logits
        ``(max_len, vocab)``; position t of every sequence samples from
        ``softmax(policy_logits[t])``.
    token_reward
        ``(vocab,)`` reward of each token; a sequence's reward is the sum
        over its tokens, plus noise.
    """

    policy_logits: np.ndarray
    ref_logits: np.ndarray
    token_reward: np.ndarray

    @property
    def policy_logprobs(self) -> np.ndarray:
        return special.log_softmax(self.policy_logits, axis=-1)

    @property
    def ref_logprobs(self) -> np.ndarray:
        return special.log_softmax(self.ref_logits, axis=-1)

    def kl(self) -> np.ndarray:
        """Exact KL(π‖π_ref) at each position, ``(max_len,)``."""
        lp, lq = self.policy_logprobs, self.ref_logprobs
        return np.sum(np.exp(lp) * (lp - lq), axis=-1)

    def k2_mean(self) -> np.ndarray:
        """Exact E_π[½(log π_ref − log π)²] at each position."""
        lp, lq = self.policy_logprobs, self.ref_logprobs
        return np.sum(np.exp(lp) * 0.5 * (lq - lp) ** 2, axis=-1)


def categorical_model(
    vocab: int, max_len: int, *, seed: int, shift: float = 1.0
) -> CategoricalModel:
    """A seeded model: reference logits N(0, 1), policy = reference + shift·N(0, 1).

    The policy's drift also tilts it toward rewarded tokens, so larger
    ``shift`` buys both reward and KL, as RL training does.
    """
    if vocab < 2 or max_len < 1:
        raise InputError("need vocab >= 2 and max_len >= 1")
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((max_len, vocab))
    noise = rng.standard_normal((max_len, vocab))
    token_reward = rng.standard_normal(vocab)
    policy = ref + shift * (0.5 * noise + token_reward)
    return CategoricalModel(policy, ref, token_reward)


def _sample(model: CategoricalModel, n: int, rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(np.exp(model.policy_logprobs), axis=-1)
    u = rng.random((n, cdf.shape[0]))
    ids = np.empty((n, cdf.shape[0]), dtype=np.int64)
    for t in range(cdf.shape[0]):
        ids[:, t] = np.minimum(np.searchsorted(cdf[t], u[:, t]), cdf.shape[1] - 1)
    return ids


def simulate_rollouts(
    n_seqs: int,
    vocab: int,
    max_len: int,
    *,
    seed: int,
    shifts: tuple[float, ...] = (1.0,),
    min_len: int = 1,
    layout: str = "ragged",
    pad_value: float = -20.0,
    group_size: int = 4,
    reward_noise: float = 0.1,
) -> pl.DataFrame:
    """Rollouts sampled from categorical policies with known KL.

    Parameters
    ----------
    n_seqs
        Sequences per step.
    vocab, max_len
        Vocabulary size and the longest response.
    seed
        Seeds everything.
    shifts
        One policy per entry (step 0, 1, …), each ``categorical_model``
        with that shift over the same reference.
    min_len
        Response lengths are uniform on ``min_len..max_len``.
    layout
        ``"ragged"``: lists hold only the response tokens. ``"padded"``:
        lists of ``max_len`` with ``pad_value`` log-probs past the length,
        so a reader that ignores ``mask`` / ``response_length`` is wrong.
    group_size
        Consecutive sequences sharing a prompt id (``group``).
    reward_noise
        Standard deviation of the noise added to the token-sum reward.

    Returns
    -------
    polars.DataFrame
        ``step``, ``group``, ``token_ids``, ``policy_logprobs``,
        ``ref_logprobs``, ``mask``, ``response_length``, ``reward`` and
        the truths ``kl_exact`` (Σ of the exact per-position KL over the
        response) and ``k2_exact`` (the same for E[k2]).
    """
    if layout not in ("ragged", "padded"):
        raise InputError(f"layout must be 'ragged' or 'padded', got {layout!r}")
    if not 1 <= min_len <= max_len:
        raise InputError("need 1 <= min_len <= max_len")
    rng = np.random.default_rng(seed)
    frames = [
        _one_step(
            step,
            categorical_model(vocab, max_len, seed=seed, shift=s),
            n_seqs,
            rng,
            min_len,
            layout,
            pad_value,
            group_size,
            reward_noise,
        )
        for step, s in enumerate(shifts)
    ]
    return pl.concat(frames)


def _one_step(step, model, n, rng, min_len, layout, pad_value, group_size, noise):
    max_len = model.policy_logits.shape[0]
    ids = _sample(model, n, rng)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    pos = np.arange(max_len)
    lp = model.policy_logprobs[pos, ids]
    lq = model.ref_logprobs[pos, ids]
    inside = pos[None, :] < lengths[:, None]
    reward = (model.token_reward[ids] * inside).sum(1) + noise * rng.standard_normal(n)
    kl_cum = np.concatenate([[0.0], np.cumsum(model.kl())])
    k2_cum = np.concatenate([[0.0], np.cumsum(model.k2_mean())])
    if layout == "padded":
        lp, lq = np.where(inside, lp, pad_value), np.where(inside, lq, pad_value)
        rows = [slice(0, max_len)] * n
    else:
        rows = [slice(0, int(m)) for m in lengths]
    return pl.DataFrame(
        {
            "step": np.full(n, step),
            "group": np.arange(n) // group_size,
            "token_ids": [ids[i, r].tolist() for i, r in enumerate(rows)],
            "policy_logprobs": [lp[i, r].tolist() for i, r in enumerate(rows)],
            "ref_logprobs": [lq[i, r].tolist() for i, r in enumerate(rows)],
            "mask": [inside[i, r].tolist() for i, r in enumerate(rows)],
            "response_length": lengths,
            "reward": reward,
            "kl_exact": kl_cum[lengths],
            "k2_exact": k2_cum[lengths],
        }
    )


def write_rollouts(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write rollouts as JSONL (``.jsonl``) or Parquet (``.parquet``)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        frame.write_ndjson(path)
    elif path.suffix == ".parquet":
        frame.write_parquet(path)
    else:
        raise InputError(f"{path}: write .jsonl or .parquet")
    return path
