"""Small exact statistics shared by every analysis (scipy underneath).

Each function refuses what it cannot compute: a proportion with no trials
raises :class:`~rlhf_diag.exceptions.UndefinedStatisticError` with the reason,
instead of returning NaN or 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlhf_diag.exceptions import UndefinedStatisticError

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975); pinned in tests


@dataclass(frozen=True)
class Proportion:
    """``k`` successes of ``n`` trials, with a Wilson 95% interval and the
    exact two-sided binomial p-value against 1/2."""

    k: int
    n: int
    rate: float
    wilson95: tuple[float, float]
    binomial_p: float


def proportion(k: int, n: int, what: str = "proportion") -> Proportion:
    """Rate ``k / n`` with its Wilson score interval (Wilson 1927) and the
    exact binomial test of ``p = 1/2`` (two-sided, scipy's ``binomtest``).

    Raises
    ------
    UndefinedStatisticError
        When ``n == 0``.
    """
    k, n = int(k), int(n)
    if n == 0:
        raise UndefinedStatisticError(f"{what}: no eligible items (0 trials)")
    from scipy import stats as _st  # lazy: scipy costs ~0.5 s to import

    test = _st.binomtest(k, n, 0.5)
    ci = test.proportion_ci(confidence_level=0.95, method="wilson")
    return Proportion(k, n, k / n, (float(ci.low), float(ci.high)), float(test.pvalue))


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval in closed form (the reference that
    :func:`proportion` is tested against)."""
    if n == 0:
        raise UndefinedStatisticError("Wilson interval: 0 trials")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(centre - half), float(centre + half)


def compare_counts(chosen: np.ndarray, rejected: np.ndarray, *, more="chosen_more",
                   fewer="chosen_fewer") -> dict:
    """Compare a per-pair quantity between chosen and rejected responses.

    Returns counts of pairs where chosen has more, fewer or equal; the share
    of non-equal pairs where chosen has more (``frac_<more>``) with its Wilson
    95% interval and exact binomial p-value; and the mean and median of
    chosen − rejected. When every pair is equal the share is refused:
    ``frac_<more>``, ``wilson95`` and ``binomial_p`` are None and
    ``undefined`` gives the reason.
    """
    c = np.asarray(chosen, dtype=np.float64)
    r = np.asarray(rejected, dtype=np.float64)
    diff = c - r
    n_more = int((diff > 0).sum())
    n_fewer = int((diff < 0).sum())
    out = {
        more: n_more,
        fewer: n_fewer,
        "equal": int(diff.size - n_more - n_fewer),
        f"frac_{more}": None,
        "wilson95": None,
        "binomial_p": None,
        "mean_diff": float(diff.mean()) if diff.size else None,
        "median_diff": float(np.median(diff)) if diff.size else None,
        "mean_chosen": float(c.mean()) if c.size else None,
        "mean_rejected": float(r.mean()) if r.size else None,
    }
    try:
        p = proportion(n_more, n_more + n_fewer)
    except UndefinedStatisticError:
        out["undefined"] = "every pair is equal: no pair decides the share"
        return out
    out[f"frac_{more}"] = p.rate
    out["wilson95"] = list(p.wilson95)
    out["binomial_p"] = p.binomial_p
    return out
