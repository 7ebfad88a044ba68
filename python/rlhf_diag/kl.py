"""KL-penalised objective diagnostics from policy and reference log-probs.

Trainers optimise ``E[r] − β·KL(π‖π_ref)`` and log a "kl" whose definition
differs between them (a per-sequence sum of k1, a per-token mean, k3 in the
loss, clamped per-token values). This module computes every estimator from
the same tokens, labels each figure with the estimator and the aggregation
that produced it, and checks the things that go wrong in practice: masks,
padding and negative values.

Estimators, per token sampled from π, with ``log r = log π_ref − log π``
(Schulman, "Approximating KL Divergence", 2020):

* ``k1 = −log r``: unbiased, can be negative, high variance;
* ``k2 = ½(log r)²``: non-negative, biased (the bias is second order);
* ``k3 = (r − 1) − log r``: non-negative and unbiased;
* ``abs = |log r|`` and ``mse = ½(log r)²`` as TRL names them (``mse``
  equals ``k2``);
* ``full``: the exact KL from whole distributions, when logits are given.

The per-token work runs in the Rust core (``rlhf_diag._core``) in float64,
selecting masked positions (never multiplying by the mask) and refusing
non-finite values, and log-probs above 0 (beyond :data:`LOGPROB_TOL` of
rounding), among the selected tokens (mask or lengths), naming the sequence
and position.
"""

from __future__ import annotations

import html
import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.json as pa_json
from rlhf_diag import _core
from rlhf_diag.exceptions import (
    DataFormatError,
    DataQualityWarning,
    InputError,
    UndefinedStatisticError,
)
from rlhf_diag.io import detect_table_format, read_bytes, read_table

log = logging.getLogger("rlhf_diag")

#: Sampled-token estimators, in the order every table lists them.
ESTIMATORS = ("k1", "k2", "k3", "abs", "mse")
#: How a sequence's per-token values become one number.
AGGREGATIONS = ("sum", "mean")
#: Largest log-prob accepted inside the selection (0 plus rounding slack,
#: 1e-6); the Rust core refuses anything above it with the sequence and
#: position.
LOGPROB_TOL: float = _core.KL_LOGPROB_TOL

__all__ = [
    "AGGREGATIONS",
    "ESTIMATORS",
    "LOGPROB_TOL",
    "DPORewards",
    "KLEstimates",
    "KLObjective",
    "OveroptimizationFit",
    "RewardKLCurve",
    "bon_kl_bound",
    "dpo_implicit_rewards",
    "dpo_rewards_from_sums",
    "estimate_kl",
    "estimate_kl_frame",
    "fit_overoptimization",
    "full_kl",
    "kl_objective",
    "mask_from_ids",
    "ppo_token_rewards",
    "read_rollouts",
    "reward_kl_curve",
    "sequence_logprobs",
]


# --------------------------------------------------------------------------
# Inputs: everything becomes flat float64 values + int64 offsets.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Batch:
    """Flat token arrays ready for the core."""

    policy: np.ndarray
    reference: np.ndarray
    offsets: np.ndarray
    mask: np.ndarray | None
    lengths: np.ndarray | None
    shape: tuple[int, int] | None  # (n, T) when the input was padded

    @property
    def n_seqs(self) -> int:
        return len(self.offsets) - 1

    @property
    def selection(self) -> str:
        if self.mask is not None:
            return "mask"
        return "lengths" if self.lengths is not None else "all tokens"

    def core_args(self) -> dict[str, Any]:
        return {"mask": self.mask, "lengths": self.lengths}


def _is_ragged(obj: Any) -> bool:
    if isinstance(obj, (pl.Series, pa.Array, pa.ChunkedArray)):
        return True
    if isinstance(obj, np.ndarray):
        return obj.dtype == object
    if isinstance(obj, (list, tuple)) and len(obj) > 0:
        return all(x is None or isinstance(x, (list, tuple, np.ndarray)) for x in obj)
    return False


def _list_array(obj: Any, name: str, value_type: pa.DataType) -> pa.Array:
    if isinstance(obj, pl.Series):
        obj = obj.to_arrow()
    elif not isinstance(obj, (pa.Array, pa.ChunkedArray)):
        rows = list(obj)
        try:
            obj = pa.array(rows, type=pa.large_list(value_type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            try:  # booleans for a byte mask, for instance: infer, then cast
                obj = pa.array(rows)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
                raise InputError(
                    f"{name}: not a list of numeric lists ({exc})"
                ) from None
    if isinstance(obj, pa.ChunkedArray):
        obj = obj.combine_chunks()
    t = obj.type
    if not (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
    ):
        raise InputError(f"{name}: expected a list column, found {t}")
    try:
        return obj.cast(pa.large_list(value_type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(
            f"{name}: cannot read as lists of {value_type} ({exc})"
        ) from None


def _flatten(obj: Any, name: str, value_type: pa.DataType):
    """(values, offsets) of a ragged column; nulls inside lists -> NaN."""
    arr = _list_array(obj, name, value_type)
    if arr.null_count:
        row = int(np.flatnonzero(np.asarray(arr.is_null()))[0])
        raise InputError(f"{name}: row {row} is null, expected a list")
    offsets = np.asarray(arr.offsets, dtype=np.int64)
    values = arr.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    if values.null_count and pa.types.is_floating(value_type):
        values = values.fill_null(float("nan"))
    elif values.null_count:
        flat = int(np.flatnonzero(np.asarray(values.is_null()))[0])
        row = int(np.searchsorted(offsets, flat, side="right")) - 1
        raise InputError(f"{name}: row {row}, position {flat - offsets[row]} is null")
    return np.ascontiguousarray(values.to_numpy(zero_copy_only=False)), offsets


def _as_mask(mask: Any, name: str = "mask") -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype == bool:
        return np.ascontiguousarray(m).view(np.uint8)
    if m.dtype.kind not in "iuf" or not np.isin(m, (0, 1)).all():
        raise InputError(f"{name}: values must be 0/1 or booleans")
    return np.ascontiguousarray(m, dtype=np.uint8)


def _as_lengths(lengths: Any, n_seqs: int) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(lengths))
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr % 1 == 0):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise InputError(f"lengths: expected 1-D integers, found {arr.dtype}")
    if len(arr) != n_seqs:
        raise InputError(f"lengths: {len(arr)} values for {n_seqs} sequences")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _same_offsets(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if len(a) != len(b):
        raise InputError(
            f"{what}: {len(b) - 1} sequences, policy log-probs have {len(a) - 1}"
        )
    diff = np.flatnonzero(np.diff(a) != np.diff(b))
    if len(diff):
        i = int(diff[0])
        raise InputError(
            f"{what}: sequence {i} has {b[i + 1] - b[i]} tokens, "
            f"policy log-probs have {a[i + 1] - a[i]}"
        )


def _ragged_batch(policy, reference, mask, lengths) -> _Batch:
    p, off = _flatten(policy, "policy log-probs", pa.float64())
    q, off_q = _flatten(reference, "reference log-probs", pa.float64())
    _same_offsets(off, off_q, "reference log-probs")
    m = None
    if mask is not None:
        mv, off_m = _flatten(mask, "mask", pa.uint8())
        _same_offsets(off, off_m, "mask")
        m = _as_mask(mv)
    lens = None if lengths is None else _as_lengths(lengths, len(off) - 1)
    return _Batch(p, q, off, m, lens, None)


def _dense_batch(policy, reference, mask, lengths) -> _Batch:
    p = np.asarray(policy, dtype=np.float64)
    q = np.asarray(reference, dtype=np.float64)
    if p.shape != q.shape:
        raise InputError(f"policy shape {p.shape} != reference shape {q.shape}")
    if p.ndim not in (1, 2):
        raise InputError(f"log-probs must be 1-D or 2-D, found {p.ndim}-D")
    shape = p.shape if p.ndim == 2 else (1, p.shape[0])
    m = None
    if mask is not None:
        m = _as_mask(mask)
        if m.shape != p.shape:
            raise InputError(f"mask shape {m.shape} != log-prob shape {p.shape}")
        m = m.ravel()
    lens = None if lengths is None else _as_lengths(lengths, shape[0])
    offsets = np.arange(shape[0] + 1, dtype=np.int64) * shape[1]
    return _Batch(
        np.ascontiguousarray(p).ravel(),
        np.ascontiguousarray(q).ravel(),
        offsets,
        m,
        lens,
        shape if p.ndim == 2 else None,
    )


def _batch(policy, reference, mask=None, lengths=None) -> _Batch:
    if mask is not None and lengths is not None:
        raise InputError("give either a mask or lengths, not both")
    if _is_ragged(policy):
        return _ragged_batch(policy, reference, mask, lengths)
    return _dense_batch(policy, reference, mask, lengths)


def _clamp(clamp: tuple[float, float] | None) -> tuple[float, float] | None:
    if clamp is None:
        return None
    lo, hi = (float(x) for x in clamp)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise InputError(f"clamp: need lo <= hi, got ({lo}, {hi})")
    return lo, hi


# --------------------------------------------------------------------------
# Small statistics shared by the result objects.
# --------------------------------------------------------------------------


def _describe(x: np.ndarray) -> dict[str, float | None]:
    """mean, standard error, min, max; se None (with no NaN) below n = 2."""
    n = len(x)
    if n == 0:
        raise UndefinedStatisticError("no sequences to summarise")
    se = float(np.std(x, ddof=1) / math.sqrt(n)) if n > 1 else None
    return {
        "mean": float(np.mean(x)),
        "se": se,
        "min": float(np.min(x)),
        "max": float(np.max(x)),
    }


def _fmt(x: float | None, digits: int = 6) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _per_token_mean(sums: np.ndarray, n_tokens: np.ndarray) -> np.ndarray:
    empty = np.flatnonzero(n_tokens == 0)
    if len(empty):
        raise UndefinedStatisticError(
            f"sequence {int(empty[0])} has no selected tokens, so its per-token "
            f"mean is undefined ({len(empty)} such sequences)"
        )
    return sums / n_tokens


# --------------------------------------------------------------------------
# Estimates.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class KLEstimates:
    """Per-sequence KL estimates from one pass over the tokens.

    Attributes
    ----------
    sums
        Estimator name -> per-sequence sum over the selected tokens.
    n_tokens
        Selected tokens per sequence.
    sum_policy, sum_ref
        Per-sequence sums of the selected policy / reference log-probs.
    selection
        ``"mask"``, ``"lengths"`` or ``"all tokens"``.
    clamp, clamped
        The clamp bounds (or None) and, per estimator, how many tokens
        the clamp changed.
    full
        Exact per-sequence KL from whole distributions, when given.
    reward, step, group
        Optional per-sequence columns carried along for the objective and
        the reward-vs-KL curve.
    """

    sums: dict[str, np.ndarray]
    n_tokens: np.ndarray
    sum_policy: np.ndarray
    sum_ref: np.ndarray
    selection: str
    clamp: tuple[float, float] | None = None
    clamped: dict[str, int] = field(default_factory=dict)
    full: np.ndarray | None = None
    reward: np.ndarray | None = None
    step: np.ndarray | None = None
    group: np.ndarray | None = None

    @property
    def n_seqs(self) -> int:
        """Number of sequences."""
        return len(self.n_tokens)

    @property
    def estimators(self) -> tuple[str, ...]:
        """Estimators available, ``full`` last when present."""
        return ESTIMATORS + (("full",) if self.full is not None else ())

    def values(self, estimator: str = "k1", aggregation: str = "sum") -> np.ndarray:
        """Per-sequence values of one estimator under one aggregation.

        Parameters
        ----------
        estimator
            One of :data:`ESTIMATORS` or ``"full"``.
        aggregation
            ``"sum"`` over the selected tokens, or ``"mean"`` per token
            (numerator and denominator on the same selection).
        """
        if estimator == "full":
            if self.full is None:
                raise InputError("no full distributions were given")
            sums = self.full
        elif estimator in ESTIMATORS:
            sums = self.sums[estimator]
        else:
            raise InputError(f"unknown estimator {estimator!r}; expected {ESTIMATORS}")
        if aggregation == "sum":
            return sums
        if aggregation == "mean":
            return _per_token_mean(sums, self.n_tokens)
        raise InputError(
            f"unknown aggregation {aggregation!r}; expected {AGGREGATIONS}"
        )

    def describe(self, estimator: str, aggregation: str = "sum") -> dict:
        """Mean, standard error, min and max over sequences."""
        return _describe(self.values(estimator, aggregation))

    def token_mean(self, estimator: str) -> float:
        """Pooled per-token mean: all sums over all selected tokens."""
        total = int(self.n_tokens.sum())
        if total == 0:
            raise UndefinedStatisticError("no selected tokens in the batch")
        return float(self.values(estimator).sum() / total)

    def to_dict(self) -> dict:
        """JSON-ready dict: ``per_sequence``, ``summary`` and context."""
        est = self.estimators
        cols = {e: self.values(e).tolist() for e in est}
        n_tok = self.n_tokens.tolist()
        per_seq = [
            {**{e: cols[e][i] for e in est}, "n_tokens": n_tok[i]}
            for i in range(self.n_seqs)
        ]
        if self.reward is not None:
            for rec, r in zip(per_seq, self.reward.tolist()):
                rec["reward"] = r
        total = int(self.n_tokens.sum())
        return {
            "per_sequence": per_seq,
            "summary": {e: self.describe(e) for e in est},
            "aggregation": "sum over selected tokens per sequence; "
            "summary over sequences",
            "token_mean": ({e: self.token_mean(e) for e in est} if total else None),
            "n_sequences": self.n_seqs,
            "n_tokens": total,
            "selection": self.selection,
            "clamp": None
            if self.clamp is None
            else {"lo": self.clamp[0], "hi": self.clamp[1], "clamped": self.clamped},
            "share_negative_k1": float(np.mean(self.sums["k1"] < 0))
            if self.n_seqs
            else None,
        }

    def to_polars(self) -> pl.DataFrame:
        """One row per sequence: estimator sums, token count, extras."""
        data: dict[str, Any] = {e: self.values(e) for e in self.estimators}
        data["n_tokens"] = self.n_tokens
        data["sum_policy"] = self.sum_policy
        data["sum_ref"] = self.sum_ref
        for name in ("reward", "step", "group"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return pl.DataFrame(data)

    def summary(self) -> str:
        """Plain-text table of the per-sequence sums."""
        lines = [
            (
                f"KL estimates: {self.n_seqs} sequences, "
                f"{int(self.n_tokens.sum())} tokens ({self.selection})"
            ),
            "per-sequence sum over selected tokens, then over sequences:",
            (
                f"{'estimator':<10}{'mean':>12}{'se':>12}{'min':>12}{'max':>12}"
                f"{'token mean':>12}"
            ),
        ]
        for e in self.estimators:
            d = self.describe(e)
            tm = self.token_mean(e) if self.n_tokens.sum() else None
            lines.append(
                f"{e:<10}{_fmt(d['mean']):>12}{_fmt(d['se']):>12}"
                f"{_fmt(d['min']):>12}{_fmt(d['max']):>12}{_fmt(tm):>12}"
            )
        if self.clamp is not None:
            lines.append(f"clamp {self.clamp}: tokens changed {self.clamped}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The report page (histograms, summary) as a notebook fragment."""
        from rlhf_diag.report import build_page

        return build_page(self).fragment()

    def __str__(self) -> str:
        return self.summary()


def _warn_empty_sequences(est: KLEstimates, stacklevel: int) -> None:
    empty = np.flatnonzero(est.n_tokens == 0)
    if len(empty):
        first = ", ".join(str(int(i)) for i in empty[:5])
        warnings.warn(
            f"{len(empty)} of {est.n_seqs} sequences have no selected tokens "
            f"(sequence {first}{', ...' if len(empty) > 5 else ''}): their KL "
            f"sums are 0 and count in the per-sequence mean; their per-token "
            f"mean is undefined",
            DataQualityWarning,
            stacklevel=stacklevel + 1,
        )


def _warn_negative_k1(est: KLEstimates, stacklevel: int) -> None:
    if est.n_seqs and est.sums["k1"].mean() < 0:
        warnings.warn(
            f"the batch mean of k1 is negative ({est.sums['k1'].mean():.6g} per "
            f"sequence): KL cannot be, so the tokens were not sampled from the "
            f"policy, or log-probs and mask are misaligned; a k1 penalty acts "
            f"as a bonus on {np.mean(est.sums['k1'] < 0):.1%} of sequences",
            DataQualityWarning,
            stacklevel=stacklevel + 1,
        )


def _optional_column(x: Any, n: int, name: str) -> np.ndarray | None:
    if x is None:
        return None
    arr = x.to_numpy() if isinstance(x, pl.Series) else np.asarray(x)
    if arr.shape != (n,):
        raise InputError(f"{name}: expected {n} values, found shape {arr.shape}")
    return arr


def _null_positions(x: Any, arr: np.ndarray) -> np.ndarray:
    """Boolean mask of missing values (null / None, not NaN)."""
    if isinstance(x, pl.Series):
        return x.is_null().to_numpy()
    if arr.dtype == object:
        return np.array([v is None for v in arr], dtype=bool)
    return np.zeros(arr.shape, dtype=bool)


def _reward_column(x: Any, n: int, name: str) -> np.ndarray | None:
    """Per-sequence rewards as float64; null, NaN and inf refused by name."""
    arr = _optional_column(x, n, name)
    if arr is None:
        return None
    null = _null_positions(x, arr)
    if null.any():
        i = int(np.flatnonzero(null)[0])
        raise InputError(
            f"{name}: sequence {i} is null (missing); every sequence needs a "
            f"reward ({int(null.sum())} missing)"
        )
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected numbers, found {arr.dtype}") from None
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        i = int(bad[0])
        what = "NaN" if math.isnan(arr[i]) else f"{arr[i]} (not finite)"
        raise InputError(f"{name}: sequence {i} is {what}")
    return arr


def _estimate(
    batch: _Batch, clamp, extras: dict, full: np.ndarray | None, stacklevel: int
) -> KLEstimates:
    clamp = _clamp(clamp)
    r = _core.kl_reduce(
        batch.policy,
        batch.reference,
        batch.offsets,
        clamp=clamp,
        **batch.core_args(),
    )
    names = extras.get("names", {})
    n = batch.n_seqs
    reward = _reward_column(extras.get("reward"), n, names.get("reward", "reward"))
    est = KLEstimates(
        sums={e: r[e] for e in ESTIMATORS},
        n_tokens=r["n_tokens"],
        sum_policy=r["sum_policy"],
        sum_ref=r["sum_ref"],
        selection=batch.selection,
        clamp=clamp,
        clamped=dict(zip(ESTIMATORS, r["clamped"])) if clamp else {},
        full=full,
        reward=reward,
        step=_optional_column(extras.get("step"), n, names.get("step", "step")),
        group=_optional_column(extras.get("group"), n, names.get("group", "group")),
    )
    _warn_empty_sequences(est, stacklevel + 1)
    _warn_negative_k1(est, stacklevel + 1)
    return est


def estimate_kl(
    policy_logprobs: Any,
    ref_logprobs: Any,
    *,
    mask: Any = None,
    lengths: Any = None,
    clamp: tuple[float, float] | None = None,
    reward: Any = None,
    step: Any = None,
    group: Any = None,
    policy_logits: Any = None,
    ref_logits: Any = None,
) -> KLEstimates:
    """Estimate KL(π‖π_ref) per sequence with k1, k2, k3, abs and mse.

    Parameters
    ----------
    policy_logprobs, ref_logprobs
        Log-probs of the sampled tokens under the policy and the reference:
        a 2-D padded array (sequences × positions), a 1-D array (one
        sequence), or ragged lists (list of lists, polars list Series,
        pyarrow list array).
    mask
        Same layout as the log-probs; 1/True selects a token. Masks are
        never inferred from token ids (see :func:`mask_from_ids`).
    lengths
        Instead of a mask: per sequence, the number of leading tokens that
        count.
    clamp
        ``(lo, hi)`` bounds applied to each per-token estimator value;
        :attr:`KLEstimates.clamped` counts the tokens changed.
    reward, step, group
        Optional per-sequence values carried into the result. Every
        sequence needs a finite reward: a null (None) or NaN is refused
        with the sequence's index.
    policy_logits, ref_logits
        Optional whole distributions, one row per token position in the
        same layout (an extra trailing vocabulary axis); adds ``full``.

    Returns
    -------
    KLEstimates

    Raises
    ------
    InputError
        Mismatched shapes, a non-finite log-prob inside the selection, or
        one above 0 by more than :data:`LOGPROB_TOL` (the message names the
        sequence and the position); a missing or non-finite reward.

    Warns
    -----
    DataQualityWarning
        When the batch mean of k1 is negative.

    Notes
    -----
    Values outside the selection are never read, so padding may hold
    ``-inf`` or NaN. Log-probs are ≤ 0; values up to :data:`LOGPROB_TOL`
    above 0 (float rounding, e.g. a float32 log-softmax) are used as
    given. Schulman (2020) derives the estimators; k1 and k3 are unbiased
    for tokens sampled from π, k2 is biased upward.
    """
    batch = _batch(policy_logprobs, ref_logprobs, mask, lengths)
    full = None
    if policy_logits is not None or ref_logits is not None:
        if policy_logits is None or ref_logits is None:
            raise InputError("give both policy_logits and ref_logits")
        full, _ = _full_from_batch(policy_logits, ref_logits, batch)
    extras = {"reward": reward, "step": step, "group": group}
    return _estimate(batch, clamp, extras, full, stacklevel=2)


def _auto_column(frame: pl.DataFrame, given: str | None, names: Sequence[str]):
    if given is not None:
        if given not in frame.columns:
            raise InputError(f"column {given!r} not found; have {frame.columns}")
        return given
    return next((c for c in names if c in frame.columns), None)


def estimate_kl_frame(
    frame: pl.DataFrame,
    *,
    policy_col: str = "policy_logprobs",
    ref_col: str = "ref_logprobs",
    mask_col: str | None = None,
    length_col: str | None = None,
    reward_col: str | None = None,
    step_col: str | None = None,
    group_col: str | None = None,
    clamp: tuple[float, float] | None = None,
) -> KLEstimates:
    """:func:`estimate_kl` on a rollouts frame (one row per sequence).

    Parameters
    ----------
    frame
        Rollouts with list columns of per-token log-probs.
    policy_col, ref_col
        The log-prob list columns.
    mask_col, length_col
        At most one. When neither is given, a column ``mask`` is used if
        present, else ``response_length``, else every token counts (logged).
    reward_col, step_col, group_col
        Optional per-sequence columns; default to ``reward``,
        ``step``/``checkpoint``/``beta`` and ``group`` when present.
    clamp
        See :func:`estimate_kl`.
    """
    if mask_col is not None and length_col is not None:
        raise InputError("give either a mask column or a length column, not both")
    for col in (policy_col, ref_col):
        if col not in frame.columns:
            raise InputError(f"column {col!r} not found; have {frame.columns}")
    if mask_col is None and length_col is None:
        mask_col = _auto_column(frame, None, ["mask"])
        if mask_col is None:
            length_col = _auto_column(frame, None, ["response_length"])
        log.info(
            "token selection: %s",
            f"column {mask_col or length_col!r}"
            if (mask_col or length_col)
            else "no mask or length column, every token counts",
        )
    else:
        mask_col = _auto_column(frame, mask_col, []) if mask_col else None
        length_col = _auto_column(frame, length_col, []) if length_col else None
    extras = {
        "reward": _auto_column(frame, reward_col, ["reward"]),
        "step": _auto_column(frame, step_col, ["step", "checkpoint", "beta"]),
        "group": _auto_column(frame, group_col, ["group"]),
    }
    batch = _batch(
        frame[policy_col],
        frame[ref_col],
        mask=frame[mask_col] if mask_col else None,
        lengths=frame[length_col].to_numpy() if length_col else None,
    )
    values: dict[str, Any] = {k: frame[c] if c else None for k, c in extras.items()}
    values["names"] = {k: f"{k} column {c!r}" for k, c in extras.items() if c}
    return _estimate(batch, clamp, values, None, stacklevel=2)


# --------------------------------------------------------------------------
# Reading rollout files, including JSON with NaN / Infinity tokens.
# --------------------------------------------------------------------------


def _first_bad_line(raw: bytes, path: Path) -> DataFormatError | None:
    """The first line Python's json cannot read as an object, named by number."""
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            detail = (
                f"{exc.msg} at column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else str(exc)
            )
            return DataFormatError(
                f"{path}: line {number} is not valid JSON ({detail})"
            )
        if not isinstance(row, dict):
            return DataFormatError(
                f"{path}: line {number} holds a JSON {type(row).__name__}, "
                f"expected an object (one rollout per line)"
            )
    return None


def _read_json_lines(raw: bytes, path: Path) -> pl.DataFrame:
    # Arrow's JSON reader accepts NaN, Infinity and -Infinity and builds the
    # list columns as flat values + offsets, with no Python object per token.
    # One block for the whole file (up to 2 GiB) types every column from
    # every row.
    block = max(1 << 20, min(len(raw) + 1, (1 << 31) - 1))
    try:
        table = pa_json.read_json(
            pa.BufferReader(raw), read_options=pa_json.ReadOptions(block_size=block)
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        bad = _first_bad_line(raw, path)
        if bad is not None:
            raise bad from None
        raise DataFormatError(f"{path}: not readable as JSON lines ({exc})") from None
    return pl.from_arrow(table)


def _read_json_array(raw: bytes, path: Path) -> pl.DataFrame:
    try:
        rows = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{path}: line {exc.lineno} is not valid JSON ({exc.msg} at column "
            f"{exc.colno})"
        ) from None
    except ValueError as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataFormatError(f"{path}: expected a JSON array of objects")
    try:
        return pl.from_dicts(rows, infer_schema_length=None)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise DataFormatError(f"{path}: cannot build a table ({exc})") from None


def read_rollouts(path: str | Path, format: str | None = None) -> pl.DataFrame:
    """Read a rollouts file; JSON may hold ``NaN``, ``Infinity``, ``-Infinity``.

    Python's ``json.dumps`` writes non-finite floats as those bare tokens
    (padding often holds ``-inf``), which strict JSON readers refuse. The
    file is first read with :func:`rlhf_diag.io.read_table`; when a JSON
    or JSONL file fails there, it is read again with a reader that accepts
    the three tokens (NaN stays NaN, ±Infinity stays ±inf, null stays
    null).

    Parameters
    ----------
    path
        JSONL, JSON, CSV or Parquet (optionally gzipped).
    format
        One of :data:`rlhf_diag.io.TABLE_FORMATS`; from the file name when
        None.

    Raises
    ------
    DataFormatError
        The file cannot be read; for JSON a line that is not valid JSON
        (even allowing the three tokens) is named by its number, from 1.
    """
    path = Path(path)
    fmt = format or detect_table_format(path)
    try:
        return read_table(path, fmt)
    except DataFormatError:
        if fmt not in ("jsonl", "json") or not path.is_file():
            raise
    log.info("%s: strict JSON failed; reading with NaN / Infinity allowed", path)
    raw = read_bytes(path)
    if fmt == "json" and raw.lstrip()[:1] == b"[":
        return _read_json_array(raw, path)
    return _read_json_lines(raw, path)


# --------------------------------------------------------------------------
# Sequence log-probs and masks from ids.
# --------------------------------------------------------------------------


def mask_from_ids(ids: Any, *, pad_id: int, eos_id: int | None) -> np.ndarray:
    """A completion mask ``ids != pad_id``, refused when pad equals EOS.

    Parameters
    ----------
    ids
        2-D array of completion token ids, right-padded.
    pad_id, eos_id
        The padding and end-of-sequence ids. ``eos_id`` must be given.

    Raises
    ------
    InputError
        When ``eos_id`` is None or equals ``pad_id``: the mask would then
        drop the EOS token the model generated (and nothing tells padding
        from EOS), so pass an explicit mask or lengths instead.
    """
    if eos_id is None or eos_id == pad_id:
        raise InputError(
            f"pad id {pad_id} equals the EOS id ({eos_id}) or EOS is unknown: a "
            f"mask from ids would drop the generated EOS token; pass an explicit "
            f"mask or the response lengths"
        )
    return np.asarray(ids) != pad_id


def sequence_logprobs(
    logprobs: Any, *, mask: Any = None, lengths: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence sum of log-probs over the selected tokens, and counts.

    Parameters
    ----------
    logprobs
        Token log-probs in any layout :func:`estimate_kl` accepts.
    mask, lengths
        The token selection (at most one; neither = every token).

    Returns
    -------
    sums, n_tokens
        The per-token mean is ``sums / n_tokens``.
    """
    batch = _batch(logprobs, logprobs, mask, lengths)
    r = _core.kl_reduce(batch.policy, batch.policy, batch.offsets, **batch.core_args())
    return r["sum_policy"], r["n_tokens"]


# --------------------------------------------------------------------------
# Exact KL from whole distributions.
# --------------------------------------------------------------------------


def _torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _full_torch(policy, reference, keep: np.ndarray, offsets: np.ndarray, chunk: int):
    """Exact per-row KL with torch (float64, in chunks of rows), per sequence."""
    import torch  # optional extra: imported only on this path

    vocab = policy.shape[-1]
    p, q = policy.reshape(-1, vocab), reference.reshape(-1, vocab)
    if p.shape != q.shape or p.shape[0] != len(keep):
        raise InputError(
            f"logits: policy {tuple(policy.shape)} and reference "
            f"{tuple(reference.shape)} must match, with {len(keep)} token rows"
        )
    rows = np.zeros(len(keep))
    idx = np.flatnonzero(keep)
    for start in range(0, len(idx), chunk):
        sel = torch.as_tensor(idx[start : start + chunk], device=p.device)
        lp = torch.log_softmax(p[sel].double(), dim=-1)
        lq = torch.log_softmax(q[sel].double(), dim=-1)
        terms = torch.where(torch.isneginf(lp), 0.0, lp.exp() * (lp - lq))
        rows[idx[start : start + chunk]] = terms.sum(dim=-1).cpu().numpy()
    bad = np.flatnonzero(~np.isfinite(rows))
    if len(bad):
        raise InputError(
            f"token row {int(bad[0])}: the exact KL is not finite (non-finite "
            f"logits, or zero reference probability where the policy has mass)"
        )
    n_seqs = len(offsets) - 1
    seq = np.repeat(np.arange(n_seqs), np.diff(offsets))
    sums = np.bincount(seq, weights=rows, minlength=n_seqs)
    n_tok = np.bincount(seq, weights=keep, minlength=n_seqs).astype(np.int64)
    return sums, n_tok


def _row_keep(batch: _Batch) -> np.ndarray:
    n = len(batch.policy)
    if batch.mask is not None:
        return batch.mask.astype(bool)
    if batch.lengths is None:
        return np.ones(n, dtype=bool)
    pos = np.arange(n) - np.repeat(batch.offsets[:-1], np.diff(batch.offsets))
    return pos < np.repeat(batch.lengths, np.diff(batch.offsets))


def _full_from_batch(policy_logits, ref_logits, batch: _Batch, batch_rows=4096):
    if _torch_tensor(policy_logits) or _torch_tensor(ref_logits):
        return _full_torch(
            policy_logits, ref_logits, _row_keep(batch), batch.offsets, batch_rows
        )
    p = np.asarray(policy_logits, dtype=np.float64)
    q = np.asarray(ref_logits, dtype=np.float64)
    if p.shape != q.shape or p.ndim < 2:
        raise InputError(
            f"logits: policy {p.shape} and reference {q.shape} must match and "
            f"end with a vocabulary axis"
        )
    vocab = p.shape[-1]
    if vocab == 0 or p.size // vocab != len(batch.policy):
        raise InputError(
            f"logits: {p.size // max(vocab, 1)} token rows for "
            f"{len(batch.policy)} token positions"
        )
    return _core.kl_full(
        np.ascontiguousarray(p).ravel(),
        np.ascontiguousarray(q).ravel(),
        vocab,
        batch.offsets,
        **batch.core_args(),
    )


def full_kl(
    policy_logits: Any,
    ref_logits: Any,
    *,
    mask: Any = None,
    lengths: Any = None,
    offsets: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact KL(π‖π_ref) summed per sequence from whole distributions.

    Parameters
    ----------
    policy_logits, ref_logits
        Logits or log-probs with the vocabulary last: ``(n, T, V)`` padded,
        ``(T, V)`` one sequence, or ``(rows, V)`` with ``offsets``.
        numpy arrays run in the Rust core; torch tensors (the optional
        ``torch`` extra) run in batches of rows with torch, in float64.
    mask, lengths
        The token selection, as in :func:`estimate_kl`.
    offsets
        Sequence boundaries over the rows of a 2-D input.

    Returns
    -------
    sums, n_tokens
        Per sequence, Σ over selected positions of
        ``Σ_v p_v (log p_v − log q_v)``, and the position count.

    Raises
    ------
    InputError
        A non-finite logit in a selected row, or a token the reference
        gives zero probability where the policy does not (infinite KL).
    """
    shape = tuple(policy_logits.shape)
    if len(shape) < 2:
        raise InputError("logits need a trailing vocabulary axis")
    lead = shape[:-1]
    dummy = np.zeros(lead, dtype=np.float64)
    if offsets is not None:
        off = np.ascontiguousarray(offsets, dtype=np.int64)
        m = None if mask is None else _as_mask(mask).ravel()
        lens = None if lengths is None else _as_lengths(lengths, len(off) - 1)
        flat = dummy.ravel()
        batch = _Batch(flat, flat, off, m, lens, None)
    else:
        batch = _batch(dummy, dummy, mask, lengths)
    return _full_from_batch(policy_logits, ref_logits, batch)


# --------------------------------------------------------------------------
# The KL-penalised objective.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class KLObjective:
    """Per-sequence ``r − β·KL`` and its batch summary.

    Attributes
    ----------
    values
        Per-sequence objective.
    kl
        Per-sequence KL under ``estimator`` and ``aggregation``.
    mean, se
        Batch mean of the objective and its standard error (None with
        ``se_reason`` below two sequences).
    share_bonus
        Share of sequences whose KL estimate is negative, where the
        penalty ``−β·KL`` became a bonus (only k1 can be negative).
    """

    beta: float
    estimator: str
    aggregation: str
    values: np.ndarray
    reward: np.ndarray
    kl: np.ndarray
    mean: float
    se: float | None
    share_bonus: float
    se_reason: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready summary (no per-sequence arrays)."""
        return {
            "beta": self.beta,
            "estimator": self.estimator,
            "aggregation": self.aggregation,
            "mean": self.mean,
            "se": self.se,
            "se_reason": self.se_reason,
            "mean_reward": float(self.reward.mean()),
            "mean_kl": float(self.kl.mean()),
            "mean_penalty": float(-self.beta * self.kl.mean()),
            "share_bonus": self.share_bonus,
        }

    def to_polars(self) -> pl.DataFrame:
        """One row per sequence: reward, KL, objective."""
        return pl.DataFrame(
            {"reward": self.reward, "kl": self.kl, "objective": self.values}
        )

    def summary(self) -> str:
        """One-paragraph text summary."""
        d = self.to_dict()
        return (
            f"objective r - {self.beta:g}*KL ({self.estimator}, per-sequence "
            f"{self.aggregation}): mean {_fmt(d['mean'])} (se {_fmt(d['se'])}); "
            f"mean reward {_fmt(d['mean_reward'])}, mean KL {_fmt(d['mean_kl'])}, "
            f"penalty is a bonus on {self.share_bonus:.1%} of sequences"
        )

    def _repr_html_(self) -> str:
        return f"<pre>{self.summary()}</pre>"


def kl_objective(
    estimates: KLEstimates,
    beta: float,
    *,
    reward: Any = None,
    estimator: str = "k1",
    aggregation: str = "sum",
) -> KLObjective:
    """The KL-penalised objective ``r − β·KL`` per sequence.

    Parameters
    ----------
    estimates
        From :func:`estimate_kl`.
    beta
        The KL coefficient β ≥ 0.
    reward
        Per-sequence rewards; defaults to ``estimates.reward``.
    estimator, aggregation
        Which KL figure enters the penalty (PPO in TRL: k1, ``sum``).

    Returns
    -------
    KLObjective
    """
    beta = float(beta)
    if not math.isfinite(beta) or beta < 0:
        raise InputError(f"beta must be finite and >= 0, got {beta}")
    r = estimates.reward if reward is None else np.asarray(reward, dtype=np.float64)
    if r is None:
        raise InputError("the objective needs per-sequence rewards")
    if r.shape != (estimates.n_seqs,):
        raise InputError(f"reward: {r.shape} for {estimates.n_seqs} sequences")
    kl = estimates.values(estimator, aggregation)
    obj = r - beta * kl
    d = _describe(obj)
    return KLObjective(
        beta=beta,
        estimator=estimator,
        aggregation=aggregation,
        values=obj,
        reward=r,
        kl=kl,
        mean=d["mean"],
        se=d["se"],
        share_bonus=float(np.mean(kl < 0)),
        se_reason=None if d["se"] is not None else "fewer than two sequences",
    )


def ppo_token_rewards(
    policy_logprobs: Any,
    ref_logprobs: Any,
    reward: Any,
    *,
    beta: float,
    estimator: str = "k1",
    mask: Any = None,
    lengths: Any = None,
    clamp: tuple[float, float] | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Per-token rewards as PPO applies the KL penalty.

    ``−β·kl_t`` on every selected token, plus the sequence reward on the
    last selected token; 0 outside the selection (Ziegler et al., 2019;
    TRL's PPO trainer with ``kl_penalty="kl"`` is ``estimator="k1"``).

    Returns
    -------
    numpy.ndarray or list of numpy.ndarray
        Same layout as the input: 2-D for padded input, one array per
        sequence for ragged input, 1-D for a single sequence.
    """
    batch = _batch(policy_logprobs, ref_logprobs, mask, lengths)
    r = np.atleast_1d(np.asarray(reward, dtype=np.float64))
    if r.shape != (batch.n_seqs,):
        raise InputError(f"reward: {r.shape} for {batch.n_seqs} sequences")
    values, _ = _core.kl_token_values(
        batch.policy,
        batch.reference,
        batch.offsets,
        estimator,
        clamp=_clamp(clamp),
        **batch.core_args(),
    )
    red = _core.kl_reduce(
        batch.policy, batch.policy, batch.offsets, **batch.core_args()
    )
    empty = np.flatnonzero(red["last"] < 0)
    if len(empty):
        raise InputError(
            f"sequence {int(empty[0])} has no selected token to carry its reward"
        )
    out = -float(beta) * values
    out[red["last"]] += r
    if batch.shape is not None:
        return out.reshape(batch.shape)
    if not _is_ragged(policy_logprobs):
        return out
    return np.split(out, batch.offsets[1:-1])


# --------------------------------------------------------------------------
# Reward against KL across steps or β values.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RewardKLCurve:
    """Mean reward and mean KL per step (or β, or checkpoint)."""

    by: str
    estimator: str
    aggregation: str
    table: pl.DataFrame

    def to_dict(self) -> dict:
        """JSON-ready: the labels and a list of rows.

        Each row carries ``se_reason``: None, or why ``reward_se`` and
        ``kl_se`` are None (one sequence at that level).
        """
        rows = self.table.to_dicts()
        for row in rows:
            row["se_reason"] = (
                None
                if row["n"] > 1
                else "one sequence at this level, no standard error"
            )
        return {
            "by": self.by,
            "estimator": self.estimator,
            "aggregation": self.aggregation,
            "rows": rows,
        }

    def to_polars(self) -> pl.DataFrame:
        """The curve, one row per level."""
        return self.table

    def summary(self) -> str:
        """Text table of the curve."""
        head = f"reward vs KL ({self.estimator}, per-sequence {self.aggregation}) by {self.by}"
        return head + "\n" + str(self.table)

    def _repr_html_(self) -> str:
        # Levels come from the data (checkpoint names): escaped.
        return f"<pre>{html.escape(self.summary())}</pre>"


def reward_kl_curve(
    estimates: KLEstimates,
    *,
    by: Any = None,
    estimator: str = "k1",
    aggregation: str = "sum",
) -> RewardKLCurve:
    """Mean reward and mean KL (with standard errors) per level of ``by``.

    Parameters
    ----------
    estimates
        With ``reward`` set.
    by
        Per-sequence labels (steps, β values, checkpoints); defaults to
        ``estimates.step``.
    """
    if estimates.reward is None:
        raise InputError("reward-vs-KL needs per-sequence rewards")
    labels = estimates.step if by is None else np.asarray(by)
    if labels is None:
        raise InputError("reward-vs-KL needs a step / beta column or `by` labels")
    if labels.shape != (estimates.n_seqs,):
        raise InputError(f"by: {labels.shape} for {estimates.n_seqs} sequences")
    frame = pl.DataFrame(
        {
            "level": labels,
            "reward": estimates.reward,
            "kl": estimates.values(estimator, aggregation),
        }
    )
    n = pl.len()
    table = (
        frame.group_by("level")
        .agg(
            n.alias("n"),
            pl.col("reward").mean().alias("reward_mean"),
            (pl.col("reward").std() / n.sqrt()).alias("reward_se"),
            pl.col("kl").mean().alias("kl_mean"),
            (pl.col("kl").std() / n.sqrt()).alias("kl_se"),
        )
        .sort("level")
    )
    return RewardKLCurve(
        by="step" if by is None else "by",
        estimator=estimator,
        aggregation=aggregation,
        table=table,
    )


# --------------------------------------------------------------------------
# DPO implicit rewards.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DPORewards:
    """DPO implicit rewards ``β·(log π − log π_ref)`` per pair.

    Attributes
    ----------
    chosen, rejected, margins
        Per-pair implicit rewards and ``chosen − rejected``.
    accuracy_strict
        Share of pairs with margin > ``tie_tol`` (ties count as wrong).
    accuracy_with_ties
        Ties (``|margin| ≤ tie_tol``) count half.
    loss
        Mean of ``−log σ(margin)`` (Rafailov et al., 2023, eq. 7).
    margin_length_corr
        Pearson correlation of the margin with ``n_chosen − n_rejected``,
        None (with ``corr_reason``) when undefined.
    """

    beta: float
    aggregation: str
    chosen: np.ndarray
    rejected: np.ndarray
    margins: np.ndarray
    n_chosen: np.ndarray
    n_rejected: np.ndarray
    accuracy_strict: float
    accuracy_with_ties: float
    n_ties: int
    loss: float
    margin_length_corr: float | None
    corr_reason: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "beta": self.beta,
            "aggregation": self.aggregation,
            "n_pairs": len(self.margins),
            "chosen_reward_mean": float(self.chosen.mean()),
            "rejected_reward_mean": float(self.rejected.mean()),
            "margin_mean": float(self.margins.mean()),
            "accuracy_strict": self.accuracy_strict,
            "accuracy_with_ties": self.accuracy_with_ties,
            "n_ties": self.n_ties,
            "loss": self.loss,
            "margin_length_corr": self.margin_length_corr,
            "corr_reason": self.corr_reason,
        }

    def to_polars(self) -> pl.DataFrame:
        """One row per pair."""
        return pl.DataFrame(
            {
                "chosen_reward": self.chosen,
                "rejected_reward": self.rejected,
                "margin": self.margins,
                "n_chosen": self.n_chosen,
                "n_rejected": self.n_rejected,
            }
        )

    def summary(self) -> str:
        """Text summary."""
        d = self.to_dict()
        return (
            f"DPO implicit rewards (beta {self.beta:g}, log-probs {self.aggregation} "
            f"per sequence), {d['n_pairs']} pairs: margin {_fmt(d['margin_mean'])}, "
            f"accuracy {self.accuracy_strict:.3f} strict / "
            f"{self.accuracy_with_ties:.3f} ties half, loss {_fmt(self.loss)}, "
            f"corr(margin, length difference) {_fmt(self.margin_length_corr, 3)}"
        )

    def _repr_html_(self) -> str:
        return f"<pre>{self.summary()}</pre>"


def dpo_rewards_from_sums(
    chosen_policy: Any,
    chosen_ref: Any,
    rejected_policy: Any,
    rejected_ref: Any,
    *,
    beta: float,
    n_chosen: Any,
    n_rejected: Any,
    aggregation: str = "sum",
    tie_tol: float = 0.0,
) -> DPORewards:
    """DPO implicit rewards from per-sequence summed log-probs.

    Parameters
    ----------
    chosen_policy, chosen_ref, rejected_policy, rejected_ref
        Per-pair sums of token log-probs over each response's mask.
    beta
        DPO's β.
    n_chosen, n_rejected
        Token counts on the same masks (the denominators of ``mean``,
        and the length difference of the correlation).
    aggregation
        ``"sum"`` (DPO as published) or ``"mean"`` per token (as in
        length-normalised variants such as SimPO / IPO-style averaging).
    tie_tol
        Margins with ``|margin| <= tie_tol`` are ties.
    """
    if aggregation not in AGGREGATIONS:
        raise InputError(
            f"unknown aggregation {aggregation!r}; expected {AGGREGATIONS}"
        )
    cp, cr, rp, rr = (
        np.atleast_1d(np.asarray(x, dtype=np.float64))
        for x in (chosen_policy, chosen_ref, rejected_policy, rejected_ref)
    )
    nc = np.atleast_1d(np.asarray(n_chosen, dtype=np.int64))
    nr = np.atleast_1d(np.asarray(n_rejected, dtype=np.int64))
    if not (cp.shape == cr.shape == rp.shape == rr.shape == nc.shape == nr.shape):
        raise InputError("chosen / rejected sums and token counts differ in length")
    chosen, rejected = float(beta) * (cp - cr), float(beta) * (rp - rr)
    if aggregation == "mean":
        chosen = _per_token_mean(chosen, nc)
        rejected = _per_token_mean(rejected, nr)
    margins = chosen - rejected
    ties = np.abs(margins) <= tie_tol
    wins = margins > tie_tol
    corr, reason = _pearson(margins, (nc - nr).astype(np.float64))
    return DPORewards(
        beta=float(beta),
        aggregation=aggregation,
        chosen=chosen,
        rejected=rejected,
        margins=margins,
        n_chosen=nc,
        n_rejected=nr,
        accuracy_strict=float(wins.mean()),
        accuracy_with_ties=float(wins.mean() + 0.5 * ties.mean()),
        n_ties=int(ties.sum()),
        loss=float(np.logaddexp(0.0, -margins).mean()),
        margin_length_corr=corr,
        corr_reason=reason,
    )


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float | None, str | None]:
    if len(x) < 3:
        return None, "fewer than three pairs"
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, "margin or length difference is constant"
    return float(np.corrcoef(x, y)[0, 1]), None


def dpo_implicit_rewards(
    chosen_policy: Any,
    chosen_ref: Any,
    rejected_policy: Any,
    rejected_ref: Any,
    *,
    beta: float,
    aggregation: str = "sum",
    chosen_mask: Any = None,
    chosen_lengths: Any = None,
    rejected_mask: Any = None,
    rejected_lengths: Any = None,
    tie_tol: float = 0.0,
) -> DPORewards:
    """DPO implicit rewards from token log-probs of chosen and rejected.

    Each response's policy and reference log-probs are summed over the
    same mask (so numerator and denominator of ``mean`` agree), then
    passed to :func:`dpo_rewards_from_sums`. Layouts as in
    :func:`estimate_kl`.
    """
    c = _batch(chosen_policy, chosen_ref, chosen_mask, chosen_lengths)
    r = _batch(rejected_policy, rejected_ref, rejected_mask, rejected_lengths)
    if c.n_seqs != r.n_seqs:
        raise InputError(f"{c.n_seqs} chosen but {r.n_seqs} rejected sequences")
    rc = _core.kl_reduce(c.policy, c.reference, c.offsets, **c.core_args())
    rr = _core.kl_reduce(r.policy, r.reference, r.offsets, **r.core_args())
    return dpo_rewards_from_sums(
        rc["sum_policy"],
        rc["sum_ref"],
        rr["sum_policy"],
        rr["sum_ref"],
        beta=beta,
        n_chosen=rc["n_tokens"],
        n_rejected=rr["n_tokens"],
        aggregation=aggregation,
        tie_tol=tie_tol,
    )


# --------------------------------------------------------------------------
# Best-of-n and overoptimization (Gao, Schulman & Hilton, 2023).
# --------------------------------------------------------------------------


def bon_kl_bound(n: Any) -> Any:
    """KL of best-of-n sampling from its base policy, ``log n − (n−1)/n``.

    Exact for a continuous reward (no ties); with ties the true KL is
    smaller, so this is an upper bound (Beirami et al., 2024).

    Parameters
    ----------
    n
        Number of samples, an integer ≥ 1 (scalar or array).
    """
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu" and not (
        arr.dtype.kind == "f" and np.all(arr == np.floor(arr))
    ):
        raise InputError(f"n must be whole numbers, got {n!r}")
    if np.any(arr < 1):
        raise InputError(f"n must be >= 1, got {n!r}")
    out = np.log(arr) - (arr - 1) / arr
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class OveroptimizationFit:
    """Fit of Gao et al.'s gold-reward curve, with d = √KL.

    ``form="bon"``: ``R(d) = d(α − βd)``; ``form="rl"``:
    ``R(d) = d(α − β log d)``. Intervals are t intervals at ``level``;
    the peak's intervals use the delta method. ``peak_*`` are None, with
    ``peak_reason``, when β ≤ 0 (no maximum).
    """

    form: str
    alpha: float
    beta: float
    alpha_ci: tuple[float, float]
    beta_ci: tuple[float, float]
    cov: np.ndarray
    residual_sd: float
    n: int
    level: float
    peak_kl: float | None
    peak_kl_ci: tuple[float, float] | None
    peak_reward: float | None
    peak_reward_ci: tuple[float, float] | None
    peak_reason: str | None
    peak_beyond_data: bool | None

    def predict(self, kl: Any) -> np.ndarray:
        """Fitted gold reward at the given KL values."""
        return _design(np.asarray(kl, dtype=np.float64), self.form) @ np.array(
            [self.alpha, self.beta]
        )

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "form": self.form,
            "alpha": self.alpha,
            "alpha_ci": list(self.alpha_ci),
            "beta": self.beta,
            "beta_ci": list(self.beta_ci),
            "residual_sd": self.residual_sd,
            "n": self.n,
            "level": self.level,
            "peak_kl": self.peak_kl,
            "peak_kl_ci": None if self.peak_kl_ci is None else list(self.peak_kl_ci),
            "peak_reward": self.peak_reward,
            "peak_reward_ci": None
            if self.peak_reward_ci is None
            else list(self.peak_reward_ci),
            "peak_reason": self.peak_reason,
            "peak_beyond_data": self.peak_beyond_data,
        }

    def to_polars(self) -> pl.DataFrame:
        """The parameters as rows (name, estimate, lo, hi)."""
        d = self.to_dict()
        rows = [
            ("alpha", d["alpha"], *d["alpha_ci"]),
            ("beta", d["beta"], *d["beta_ci"]),
        ]
        if self.peak_kl is not None:
            rows.append(("peak_kl", d["peak_kl"], *d["peak_kl_ci"]))
            rows.append(("peak_reward", d["peak_reward"], *d["peak_reward_ci"]))
        return pl.DataFrame(rows, schema=["name", "estimate", "lo", "hi"], orient="row")

    def summary(self) -> str:
        """Text summary."""
        head = (
            f"{self.form} fit, n={self.n}: alpha {self.alpha:.4g} "
            f"[{self.alpha_ci[0]:.4g}, {self.alpha_ci[1]:.4g}], beta {self.beta:.4g} "
            f"[{self.beta_ci[0]:.4g}, {self.beta_ci[1]:.4g}]"
        )
        if self.peak_kl is None:
            return f"{head}; no peak: {self.peak_reason}"
        return (
            f"{head}; peak reward {self.peak_reward:.4g} at KL {self.peak_kl:.4g}"
            + (" (beyond the data)" if self.peak_beyond_data else "")
        )

    def _repr_html_(self) -> str:
        return f"<pre>{self.summary()}</pre>"


def _design(kl: np.ndarray, form: str) -> np.ndarray:
    d = np.sqrt(kl)
    if form == "bon":
        return np.column_stack([d, -d * d])
    safe = np.where(d > 0, d, 1.0)
    return np.column_stack([d, -np.where(d > 0, d * np.log(safe), 0.0)])


def _peak(form: str, a: float, b: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """KL and reward at the maximum, with their gradients in (α, β)."""
    if form == "bon":
        kl = a * a / (4 * b * b)
        reward = a * a / (4 * b)
        g_kl = np.array([a / (2 * b * b), -(a * a) / (2 * b**3)])
        g_r = np.array([a / (2 * b), -(a * a) / (4 * b * b)])
        return kl, reward, g_kl, g_r
    d = math.exp(a / b - 1)
    kl = d * d
    g_kl = np.array([2 * kl / b, -2 * kl * a / (b * b)])
    g_r = np.array([d, d * (1 - a / b)])
    return kl, b * d, g_kl, g_r


def fit_overoptimization(
    kl: Any, gold_reward: Any, *, form: str = "bon", level: float = 0.95
) -> OveroptimizationFit:
    """Fit Gao et al.'s functional forms to (KL, gold reward) points.

    Both forms are linear in (α, β), so the fit is ordinary least squares
    without intercept (R(0) = 0: rewards are measured from the initial
    policy), with the usual covariance ``s²(XᵀX)⁻¹``.

    Parameters
    ----------
    kl
        KL(π‖π_init) of each point, ≥ 0 (for best-of-n, see
        :func:`bon_kl_bound`).
    gold_reward
        Gold reward at each point, relative to the initial policy.
    form
        ``"bon"``: ``R = d(α − βd)``; ``"rl"``: ``R = d(α − β log d)``.
    level
        Confidence level of the intervals.

    References
    ----------
    L. Gao, J. Schulman, J. Hilton, "Scaling Laws for Reward Model
    Overoptimization", ICML 2023, eqs. (1)-(2).
    """
    if form not in ("bon", "rl"):
        raise InputError(f"form must be 'bon' or 'rl', got {form!r}")
    x = np.asarray(kl, dtype=np.float64)
    y = np.asarray(gold_reward, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError("kl and gold_reward must be 1-D of the same length")
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or (x < 0).any():
        raise InputError("kl must be finite and >= 0; gold_reward finite")
    if len(x) < 3:
        raise UndefinedStatisticError("the fit needs at least three points")
    X = _design(x, form)
    coef, _, rank, _ = np.linalg.lstsq(X, y, rcond=None)
    if rank < 2:
        raise UndefinedStatisticError("the KL values do not identify both α and β")
    dof = len(x) - 2
    resid = y - X @ coef
    s2 = float(resid @ resid / dof)
    cov = s2 * np.linalg.inv(X.T @ X)
    from scipy import stats  # imported here: scipy costs ~0.5 s at CLI start

    t = float(stats.t.ppf(0.5 + level / 2, dof))
    a, b = (float(c) for c in coef)
    se = np.sqrt(np.diag(cov))
    ci = [(c - t * s, c + t * s) for c, s in zip((a, b), se)]
    peak: dict[str, Any] = {
        "peak_kl": None,
        "peak_kl_ci": None,
        "peak_reward": None,
        "peak_reward_ci": None,
    }
    reason, beyond = None, None
    if b <= 0:
        reason = "beta <= 0: the fitted curve keeps rising, it has no maximum"
    elif form == "rl" and a / b - 1 > 700:
        reason = "the peak lies beyond float64 range (alpha/beta too large)"
    else:
        pkl, prew, g_kl, g_r = _peak(form, a, b)
        kl_se, r_se = math.sqrt(g_kl @ cov @ g_kl), math.sqrt(g_r @ cov @ g_r)
        peak = {
            "peak_kl": pkl,
            "peak_kl_ci": (pkl - t * kl_se, pkl + t * kl_se),
            "peak_reward": prew,
            "peak_reward_ci": (prew - t * r_se, prew + t * r_se),
        }
        beyond = bool(pkl > x.max())
    return OveroptimizationFit(
        form=form,
        alpha=a,
        beta=b,
        alpha_ci=ci[0],
        beta_ci=ci[1],
        cov=cov,
        residual_sd=math.sqrt(s2),
        n=len(x),
        level=level,
        peak_reason=reason,
        peak_beyond_data=beyond,
        **peak,
    )
