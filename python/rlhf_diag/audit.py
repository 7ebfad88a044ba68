"""Audit a preference set: length and format bias, data quality, and a
style-only Bradley-Terry fit.

The path is the one every analysis follows: :func:`rlhf_diag.pairs.load_pairs`
reads and normalises; one Rust pass (:func:`rlhf_diag.features.text_features`)
measures every response; this module packages the statistics into an
:class:`AuditResult`, which the CLI renders.

References
----------
- Wilson, E. B. (1927). Probable inference, the law of succession, and
  statistical inference. JASA 22(158).
- Singhal et al. (2023). A Long Way to Go: Investigating Length Correlations
  in RLHF (the "longer wins" baseline).
- Chiang et al. (2024), Chatbot Arena; LMSYS "Does style matter?" (2024):
  style features normalised as (a − b) / (a + b + 1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from rlhf_diag.exceptions import (
    DataQualityWarning,
    InputError,
    SeparationWarning,
)
from rlhf_diag.features import FEATURES, text_features
from rlhf_diag.logistic import cross_validate_logistic, fit_logistic
from rlhf_diag.pairs import N_EXAMPLE_ROWS, PairSet, load_pairs
from rlhf_diag.stats import compare_counts, proportion

#: Length ratio bin edges (longer / shorter, characters + 1 each).
RATIO_EDGES = (1.0, 1.25, 1.5, 2.0, 3.0, 5.0, np.inf)
#: L2 penalty used for the style fit when the unpenalised MLE does not exist.
SEPARATION_L2 = 1.0


@dataclass(frozen=True, repr=False)
class AuditResult:
    """Everything the audit found. ``to_dict()`` is the ``--json`` output;
    see ``docs/audit.md`` for every key."""

    source: str
    format: str
    n_rows_read: int
    n_pairs: int
    skipped: dict
    skipped_rows: dict
    length: dict
    features: dict
    length_ratio_bins: list
    quality: dict
    style_fit: dict
    warnings: list = field(default_factory=list)

    def __repr__(self) -> str:
        ch = self.length["chars"]
        return (f"AuditResult(source={self.source!r}, format={self.format!r}, "
                f"n_pairs={self.n_pairs}, frac_chosen_longer="
                f"{ch.get('frac_chosen_longer')}, warnings={len(self.warnings)})")

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "format": self.format,
            "n_rows_read": self.n_rows_read,
            "n_pairs": self.n_pairs,
            "skipped": self.skipped,
            "skipped_rows": self.skipped_rows,
            "identical_pairs": self.quality["identical_pairs"]["count"],
            "length": self.length,
            "features": self.features,
            "length_ratio_bins": self.length_ratio_bins,
            "quality": self.quality,
            "style_fit": self.style_fit,
            "warnings": self.warnings,
        }

    def to_polars(self) -> pl.DataFrame:
        """One row per length unit and feature with the bias statistics."""
        rows = []
        for name, d in {**self.length, **self.features}.items():
            more = d.get("chosen_longer", d.get("chosen_more"))
            fewer = d.get("chosen_shorter", d.get("chosen_fewer"))
            frac = d.get("frac_chosen_longer", d.get("frac_chosen_more"))
            lo, hi = d["wilson95"] or (None, None)
            rows.append({"feature": name, "chosen_more": more, "chosen_fewer": fewer,
                         "equal": d["equal"], "frac_chosen_more": frac, "ci_low": lo,
                         "ci_high": hi, "binomial_p": d["binomial_p"],
                         "mean_diff": d["mean_diff"]})
        return pl.DataFrame(rows)

    def summary(self) -> str:
        from rlhf_diag.render import audit_text

        return audit_text(self)

    def _repr_html_(self) -> str:
        from rlhf_diag.render import audit_html

        return audit_html(self)


def _rows(frame: pl.DataFrame, mask) -> list[int]:
    return frame["row"].filter(pl.Series(np.asarray(mask, dtype=bool))).to_list()


def _finding(frame: pl.DataFrame, mask, what: str) -> dict:
    rows = _rows(frame, mask)
    return {"count": len(rows), "rows": rows[:N_EXAMPLE_ROWS], "what": what}


def _length_ratio_bins(c: np.ndarray, r: np.ndarray) -> list[dict]:
    """P(the longer response is chosen) in bins of longer/shorter length
    (characters + 1, so that empty responses have a ratio); equal lengths
    are left out of every bin."""
    longer = np.maximum(c, r) + 1.0
    shorter = np.minimum(c, r) + 1.0
    ratio = longer / shorter
    chosen_longer = c > r
    out = []
    for lo, hi in zip(RATIO_EDGES[:-1], RATIO_EDGES[1:]):
        in_bin = (ratio > lo if lo == 1.0 else ratio >= lo) & (ratio < hi)
        n = int(in_bin.sum())
        entry = {"ratio_low": lo, "ratio_high": None if np.isinf(hi) else hi,
                 "n": n, "longer_chosen": int((chosen_longer & in_bin).sum())}
        if n:
            p = proportion(entry["longer_chosen"], n)
            entry.update(p_longer_chosen=p.rate, wilson95=list(p.wilson95))
        else:
            entry.update(p_longer_chosen=None, wilson95=None,
                         undefined="no pair in this bin")
        out.append(entry)
    return out


def _truncate(col: pl.Expr, limit: int, unit: str) -> pl.Expr:
    if unit == "chars":
        return col.str.slice(0, limit)
    if unit == "words":
        return col.str.extract_all(r"\S+").list.head(limit).list.join(" ")
    raise InputError(f"truncation unit must be 'chars' or 'words', got {unit!r}")


def _repeats(f: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows repeating an earlier row's (prompt, chosen, rejected), and rows
    whose (prompt, rejected, chosen) is another row's (prompt, chosen,
    rejected). Candidates are found by a 64-bit hash of each triple, then
    confirmed by comparing the texts, so a hash collision never counts."""
    fwd = pl.struct(p="prompt", c="chosen", r="rejected")
    swp = pl.struct(p="prompt", c="rejected", r="chosen")
    h = f.select(fwd=fwd.hash(), swp=swp.hash())
    dup = np.zeros(f.height, dtype=bool)
    cand = h["fwd"].is_duplicated().to_numpy()
    if cand.any():
        sub = f.filter(pl.Series(cand))
        first = sub.select(pl.struct("prompt", "chosen", "rejected").is_first_distinct())
        dup[np.flatnonzero(cand)] = ~first.to_series().to_numpy()
    conflict = np.zeros(f.height, dtype=bool)
    cand = h["swp"].is_in(h["fwd"].implode()).to_numpy()
    if cand.any():
        sub = f.filter(pl.Series(cand)).select("row", "prompt", "chosen", "rejected")
        swapped = sub.select("prompt", chosen="rejected", rejected="chosen").unique()
        hit = sub.join(swapped, on=["prompt", "chosen", "rejected"], how="semi")["row"]
        conflict = f["row"].is_in(hit.implode()).to_numpy()
    return dup, conflict


def _quality(ps: PairSet, truncate: int | None, truncate_unit: str) -> dict:
    f = ps.frame
    same = (f["chosen"] == f["rejected"]).to_numpy()
    dup, conflict = _repeats(f)
    conflict &= ~same
    q = {
        "identical_pairs": _finding(f, same, "chosen and rejected are the same text"),
        "duplicate_pairs": _finding(f, dup, "repeats an earlier row's prompt, chosen and rejected"),
        "conflicting_pairs": _finding(
            f, conflict, "another row has the same prompt with chosen and rejected swapped"),
        "empty_chosen": _finding(f, (f["chosen"].str.strip_chars() == "").to_numpy(),
                                 "chosen response is empty or whitespace"),
        "empty_rejected": _finding(f, (f["rejected"].str.strip_chars() == "").to_numpy(),
                                   "rejected response is empty or whitespace"),
    }
    if truncate is not None:
        t = f.select(c=_truncate(pl.col("chosen"), truncate, truncate_unit),
                     r=_truncate(pl.col("rejected"), truncate, truncate_unit))
        became = (t["c"] == t["r"]).to_numpy() & ~same
        q["identical_after_truncation"] = _finding(
            f, became, f"identical once cut to {truncate} {truncate_unit} "
            "(a constant loss of ln 2 and no gradient)")
        q["identical_after_truncation"]["limit"] = truncate
        q["identical_after_truncation"]["unit"] = truncate_unit
    if "hh_naive_missplits" in ps.notes:
        q["hh_naive_missplits"] = {
            "count": ps.notes["hh_naive_missplits"],
            "rows": ps.notes["hh_naive_missplit_rows"],
            "what": "splitting each transcript at its own last assistant marker "
                    "gives a different prompt (a marker inside a final reply)",
        }
    return q


def style_differences(fc: pl.DataFrame, fr: pl.DataFrame, names) -> tuple[np.ndarray, list[str], list[str]]:
    """Normalised style differences of chosen vs rejected.

    Each feature becomes ``(a - b) / (a + b + 1)`` (Chatbot Arena's style
    normalisation) and is then divided by its root mean square. Unlike Arena
    the columns are not centred: sides are not random here (chosen is always
    ``a``), so centring would change the model; without it, swapping chosen
    and rejected flips the sign of every coefficient. Features with no
    difference in any pair are left out and named.
    """
    cols, kept, dropped = [], [], []
    for name in names:
        a = fc[name].to_numpy().astype(np.float64)
        b = fr[name].to_numpy().astype(np.float64)
        d = (a - b) / (a + b + 1.0)
        rms = float(np.sqrt(np.mean(d * d))) if d.size else 0.0
        if rms == 0.0:
            dropped.append(name)
            continue
        cols.append(d / rms)
        kept.append(name)
    x = np.column_stack(cols) if cols else np.zeros((fc.height, 0))
    return np.ascontiguousarray(x), kept, dropped


def _style_fit(fc, fr, folds: int, seed: int) -> tuple[dict, list[str]]:
    x, kept, dropped = style_differences(fc, fr, FEATURES)
    notes = []
    out = {
        "model": "P(chosen > rejected) = sigmoid(w . d), d = (a-b)/(a+b+1) / rms",
        "features": kept,
        "dropped_no_variation": dropped,
    }
    if not kept:
        out["undefined"] = "no feature differs between chosen and rejected"
        return out, notes
    if x.shape[0] < 2:
        out["undefined"] = f"{x.shape[0]} pair: too few to fit"
        return out, notes
    y = np.ones(x.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeparationWarning)
        fit = fit_logistic(x, y, feature_names=kept)
    l2 = 0.0
    if fit.separated_features:
        l2 = SEPARATION_L2
        notes.append((SeparationWarning,
            "style fit: the data are separable along "
            f"{', '.join(fit.separated_features)} (no finite unpenalised estimate); "
            f"reporting the fit with an L2 penalty of {l2} instead"))
        fit = fit_logistic(x, y, feature_names=kept, l2=l2)
    out["separated_features"] = list(fit.separated_features)
    out["penalty"] = {"l2": l2}
    out["coefficients"] = [
        {"feature": n, "coef": float(c), "se": float(s), "ci95": [float(lo), float(hi)]}
        for n, c, s, (lo, hi) in zip(kept, fit.coef_, fit.se_, fit.ci95_)
    ]
    out.update(iterations=int(fit.n_iter_), grad_norm=float(fit.grad_norm_),
               converged=bool(fit.converged_))
    if x.shape[0] >= folds:
        out["cv"] = _cross_validate(x, y, kept, folds, seed, l2, notes)
    else:
        out["cv"] = {"folds": folds, "seed": seed, "accuracy": None, "log_loss": None,
                     "undefined": f"fewer pairs ({x.shape[0]}) than folds ({folds})"}
        notes.append((DataQualityWarning, f"style fit: no held-out figures: "
                      f"{out['cv']['undefined']}"))
    return out, notes


def _cross_validate(x, y, names, folds, seed, l2, notes) -> dict:
    """k-fold held-out accuracy and log-loss of the style fit. A training fold
    can be separable when the whole set is not (a rare feature lands in one
    fold): those folds are refitted with the stated L2 penalty, and a warning
    says so."""

    def run(penalty):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeparationWarning)
            return cross_validate_logistic(x, y, k=folds, random_state=seed, l2=penalty,
                                           feature_names=names)

    cv = run(l2)
    if cv["refused_reason"] and l2 == 0.0:
        notes.append((SeparationWarning, f"style fit cross-validation: {cv['refused_reason']}"
                      f"; held-out figures use an L2 penalty of {SEPARATION_L2}"))
        l2 = SEPARATION_L2
        cv = run(l2)
    out = {"folds": folds, "seed": seed, "l2": l2, "accuracy": cv["accuracy"],
           "log_loss": cv["log_loss"]}
    if cv["accuracy"] is None:
        out["undefined"] = cv["refused_reason"]
    return out


def audit(
    data: PairSet | str | Path,
    *,
    format: str | None = None,
    truncate: int | None = None,
    truncate_unit: str = "chars",
    folds: int = 5,
    random_state: int = 0,
    n_jobs: int | None = None,
    **load_kwargs,
) -> AuditResult:
    """Audit a preference set.

    Parameters
    ----------
    data
        A :class:`~rlhf_diag.pairs.PairSet` or a path for
        :func:`~rlhf_diag.pairs.load_pairs` (``format`` and ``load_kwargs``
        are passed on).
    truncate, truncate_unit
        Also count pairs that become identical once both responses are cut to
        ``truncate`` characters (``"chars"``) or whitespace tokens
        (``"words"``).
    folds, random_state
        k-fold cross-validation of the style-only fit.
    n_jobs
        Threads for the text pass (None: all cores).

    Returns
    -------
    AuditResult
    """
    if not isinstance(folds, int) or folds < 2:
        raise InputError(f"folds = {folds!r}; expected an integer >= 2")
    if truncate is not None and (not isinstance(truncate, int) or truncate < 1):
        raise InputError(f"truncate = {truncate!r}; expected a positive integer")
    if truncate_unit not in ("chars", "words"):
        raise InputError(f"truncate_unit = {truncate_unit!r}; expected 'chars' or 'words'")
    ps = data if isinstance(data, PairSet) else load_pairs(data, format, **load_kwargs)
    if ps.n_pairs == 0:
        raise InputError(f"{ps.source}: no pairs left to audit ({ps.skipped.to_dict()})")
    fc = text_features(ps.frame["chosen"], n_jobs=n_jobs)
    fr = text_features(ps.frame["rejected"], n_jobs=n_jobs)
    length = {
        unit: compare_counts(fc[unit].to_numpy(), fr[unit].to_numpy(),
                             more="chosen_longer", fewer="chosen_shorter")
        for unit in ("chars", "words")
    }
    feats = {n: compare_counts(fc[n].to_numpy(), fr[n].to_numpy())
             for n in FEATURES if n not in ("chars", "words")}
    quality = _quality(ps, truncate, truncate_unit)
    style, notes = _style_fit(fc, fr, folds, random_state)
    notes = [(DataQualityWarning, m) for m in ps.skipped.describe()] + notes
    for key in ("identical_pairs", "duplicate_pairs", "conflicting_pairs",
                "identical_after_truncation"):
        item = quality.get(key)
        if item and item["count"]:
            notes.append((DataQualityWarning, f"{item['count']} {key.replace('_', ' ')}: {item['what']} "
                         f"(first rows: {', '.join(map(str, item['rows']))})"))
    for category, msg in notes:
        warnings.warn(msg, category, stacklevel=2)
    return AuditResult(
        source=ps.source, format=ps.format, n_rows_read=ps.n_rows_read,
        n_pairs=ps.n_pairs, skipped=ps.skipped.to_dict(),
        skipped_rows=dict(ps.skipped.examples), length=length, features=feats,
        length_ratio_bins=_length_ratio_bins(fc["chars"].to_numpy(),
                                             fr["chars"].to_numpy()),
        quality=quality, style_fit=style, warnings=[m for _, m in notes],
    )
