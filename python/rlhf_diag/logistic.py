"""Logistic / Bradley-Terry regression on feature differences.

One engine for every analysis that asks "which features make a response
win": the audit's style-only Bradley-Terry fit, the leaderboard's style
control, feature-level reward models and AlpacaEval's length-controlled GLM.
Each row holds the feature differences ``d = x_chosen - x_rejected`` (or any
design row) and a target ``y`` in [0, 1], and the model is

.. math:: P(y = 1) = \\sigma(d \\cdot \\beta).

The fit runs in the Rust core (``rlhf_diag._core``) by Newton's method with a
backtracking line search; this module validates the inputs once, names the
features, turns the core's status into warnings and packages the result.

References
----------
- Bradley, R. A. & Terry, M. E. (1952). Rank analysis of incomplete block
  designs I. Biometrika 39(3/4).
- Albert, A. & Anderson, J. A. (1984). On the existence of maximum
  likelihood estimates in logistic regression models. Biometrika 71(1).
- Nocedal, J. & Wright, S. J. (2006). Numerical Optimization, 2nd ed.,
  chapter 3 (line-search Newton).
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from rlhf_diag import _core
from rlhf_diag.exceptions import ConvergenceWarning, InputError, SeparationWarning

__all__ = ["LogisticFit", "cross_validate_logistic", "fit_logistic"]

#: Two-sided 95% normal quantile used for ``ci95_``.
Z95 = 1.959963984540054


@dataclass(frozen=True, eq=False)
class LogisticFit:
    """A fitted logistic model, with its standard errors and diagnostics.

    Attributes
    ----------
    feature_names : tuple of str
        One name per column of ``X``.
    coef_ : ndarray or None
        Coefficients; None when refused (see ``refused_reason``).
    se_ : ndarray or None
        Standard errors: square roots of the diagonal of ``cov_``.
    cov_ : ndarray or None
        Inverse Hessian of the penalised objective at the optimum.
    ci95_ : ndarray or None
        Shape ``(p, 2)``: ``coef_ -+ 1.959964 se_`` (normal intervals).
    z, p_values : ndarray or None
        Wald statistics ``coef_ / se_`` and their two-sided normal p-values.
    n_iter_ : int
        Newton steps taken.
    grad_norm_ : float
        ``max_j |dL/dbeta_j|`` divided by the total weight, at the end.
    converged_ : bool
        Whether ``grad_norm_ <= tol``.
    status : str
        ``"converged"``, ``"max_iter"``, ``"line_search_failed"`` or
        ``"separated"``.
    separated_features : tuple of str
        Features involved in a separation of the data (with ``l2 > 0`` this
        is information only: the penalised fit is still finite).
    separating_direction : ndarray or None
        A direction ``v`` certified to separate the rows (max ``|v_j| = 1``).
    nll_ : float or None
        Weighted negative log-likelihood at the optimum (None when refused).
    objective_ : float or None
        ``nll_`` plus the ridge term.
    penalty : str
        The penalty in words.
    l2 : float
        Ridge strength.
    n_obs : int
        Rows with positive weight.
    total_weight : float
        Sum of the weights.
    ridge_steps : int
        Newton steps whose system needed the positive-definiteness safeguard.
    refused_reason : str or None
        Why the coefficients were refused, when they were.
    """

    feature_names: tuple[str, ...]
    coef_: np.ndarray | None
    se_: np.ndarray | None
    cov_: np.ndarray | None
    ci95_: np.ndarray | None
    z: np.ndarray | None
    p_values: np.ndarray | None
    n_iter_: int
    grad_norm_: float
    converged_: bool
    status: str
    separated_features: tuple[str, ...]
    separating_direction: np.ndarray | None
    nll_: float | None
    objective_: float | None
    penalty: str
    l2: float
    n_obs: int
    total_weight: float
    ridge_steps: int
    refused_reason: str | None

    def summary(self) -> str:
        """A plain-text table of the coefficients and the fit's diagnostics."""
        lines = [
            f"Logistic fit (Newton): {self.status} after {self.n_iter_} iterations",
            (
                f"rows {self.n_obs} (total weight {self.total_weight:g}), "
                f"features {len(self.feature_names)}, penalty {self.penalty}"
            ),
            f"max |gradient| / weight {self.grad_norm_:.3g}",
        ]
        if self.nll_ is not None:
            lines.append(f"negative log-likelihood {self.nll_:.6f}")
        if self.separated_features:
            lines.append("separated along: " + ", ".join(self.separated_features))
        if self.coef_ is None:
            lines.append(f"coefficients refused: {self.refused_reason}")
            return "\n".join(lines)
        width = max(8, *(len(n) for n in self.feature_names))
        head = ("coef", "se", "z", "P>|z|", "[0.025", "0.975]")
        lines.append("")
        lines.append(f"{'feature':<{width}}" + "".join(f"{h:>11}" for h in head))
        for j, name in enumerate(self.feature_names):
            vals = (
                self.coef_[j],
                self.se_[j],
                self.z[j],
                self.p_values[j],
                *self.ci95_[j],
            )
            lines.append(f"{name:<{width}}" + "".join(f"{v:>11.4g}" for v in vals))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict (arrays become lists; refused values stay None)."""

        def lst(a):
            return None if a is None else np.asarray(a).tolist()

        return {
            "feature_names": list(self.feature_names),
            "coef": lst(self.coef_),
            "se": lst(self.se_),
            "cov": lst(self.cov_),
            "ci95": lst(self.ci95_),
            "z": lst(self.z),
            "p_values": lst(self.p_values),
            "n_iter": self.n_iter_,
            "grad_norm": self.grad_norm_,
            "converged": self.converged_,
            "status": self.status,
            "separated_features": list(self.separated_features),
            "separating_direction": lst(self.separating_direction),
            "nll": self.nll_,
            "objective": self.objective_,
            "penalty": self.penalty,
            "l2": self.l2,
            "n_obs": self.n_obs,
            "total_weight": self.total_weight,
            "ridge_steps": self.ridge_steps,
            "refused_reason": self.refused_reason,
        }

    def to_polars(self):
        """The coefficient table as a polars DataFrame (empty when refused)."""
        import polars as pl

        if self.coef_ is None:
            return pl.DataFrame({"feature": [], "coef": []})
        return pl.DataFrame(
            {
                "feature": list(self.feature_names),
                "coef": self.coef_,
                "se": self.se_,
                "z": self.z,
                "p_value": self.p_values,
                "ci95_low": self.ci95_[:, 0],
                "ci95_high": self.ci95_[:, 1],
            }
        )


def _as_matrix(X) -> np.ndarray:
    x = np.asarray(X)
    if x.ndim != 2:
        raise InputError(f"X must be 2-D (rows x features), got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise InputError(f"X must be numeric, got dtype {x.dtype}")
        if np.issubdtype(x.dtype, np.complexfloating):
            raise InputError(f"X must be real, got dtype {x.dtype}")
        x = x.astype(np.float64)
    return np.ascontiguousarray(x)


def _as_vector(v, name: str, n: int) -> np.ndarray:
    try:
        a = np.ascontiguousarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be numeric: {exc}") from None
    if a.ndim != 1 or a.shape[0] != n:
        raise InputError(
            f"{name} has shape {a.shape}; expected ({n},), one value per row of X"
        )
    return a


def _feature_names(names, p: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"x{j}" for j in range(p))
    names = tuple(str(s) for s in names)
    if len(names) != p:
        raise InputError(f"feature_names has {len(names)} entries; X has {p} columns")
    if len(set(names)) != p:
        raise InputError("feature_names must be unique")
    return names


def _unpenalized_mask(unpenalized, names: Sequence[str]) -> list[bool] | None:
    """A boolean mask, or feature names / column indices, as a mask."""
    if unpenalized is None:
        return None
    items = list(unpenalized)
    p = len(names)
    if len(items) == p and all(isinstance(v, (bool, np.bool_)) for v in items):
        return [bool(v) for v in items]
    mask = [False] * p
    for item in items:
        if isinstance(item, str):
            if item not in names:
                raise InputError(f"unpenalized: unknown feature {item!r}")
            mask[names.index(item)] = True
        else:
            try:
                j = operator.index(item)
            except TypeError:
                raise InputError(
                    "unpenalized must be a boolean mask, feature names or column "
                    f"indices; got {item!r}"
                ) from None
            if not 0 <= j < p:
                raise InputError(f"unpenalized: column {j} is out of range 0..{p - 1}")
            mask[j] = True
    return mask


def _penalty_words(l2: float, mask: list[bool] | None, names) -> str:
    if l2 == 0.0:
        return "none"
    free = [n for n, m in zip(names, mask or []) if m]
    where = "all coefficients" + (f" except {', '.join(free)}" if free else "")
    return f"L2 (l2={l2:g}) on {where}"


def _options(l2, tol, max_iter) -> tuple[float, float, int]:
    try:
        l2, tol = float(l2), float(tol)
        max_iter = operator.index(max_iter)
    except TypeError as exc:
        raise InputError(f"l2, tol and max_iter must be numbers: {exc}") from None
    if not (np.isfinite(l2) and l2 >= 0):
        raise InputError(f"l2 = {l2}; expected a finite value >= 0")
    if not (np.isfinite(tol) and tol > 0):
        raise InputError(f"tol = {tol}; expected a finite value > 0")
    if max_iter < 1:
        raise InputError(f"max_iter = {max_iter}; expected at least 1")
    return l2, tol, max_iter


def _prepare(X, y, weight, unpenalized, feature_names):
    x = _as_matrix(X)
    n, p = x.shape
    yv = _as_vector(y, "y", n)
    w = None if weight is None else _as_vector(weight, "weight", n)
    names = _feature_names(feature_names, p)
    return x, yv, w, names, _unpenalized_mask(unpenalized, names)


def _frozen(a):
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def _package(raw: dict, names, l2: float, mask) -> LogisticFit:
    sep = tuple(names[j] for j in raw["separated_features"])
    refused = None
    if raw["status"] == "separated":
        refused = (
            "no finite maximum-likelihood estimate: the data are separated along "
            f"{', '.join(sep)}; coefficients would depend on the iteration budget "
            "(set l2 > 0 for a penalised fit)"
        )
    coef = se = cov = ci = z = pv = nll = obj = None
    if refused is None:
        coef, se, cov = raw["coef"], raw["se"], raw["cov"]
        ci = np.column_stack([coef - Z95 * se, coef + Z95 * se])
        z = coef / se
        pv = 2.0 * stats.norm.sf(np.abs(z))
        nll, obj = raw["nll"], raw["nll"] + raw["penalty"]
    return LogisticFit(
        feature_names=tuple(names),
        coef_=_frozen(coef),
        se_=_frozen(se),
        cov_=_frozen(cov),
        ci95_=_frozen(ci),
        z=_frozen(z),
        p_values=_frozen(pv),
        n_iter_=int(raw["n_iter"]),
        grad_norm_=float(raw["grad_norm"]),
        converged_=bool(raw["converged"]),
        status=raw["status"],
        separated_features=sep,
        separating_direction=_frozen(raw["separating_direction"]),
        nll_=nll,
        objective_=obj,
        penalty=_penalty_words(l2, mask, names),
        l2=l2,
        n_obs=int(raw["n_obs"]),
        total_weight=float(raw["total_weight"]),
        ridge_steps=int(raw["ridge_steps"]),
        refused_reason=refused,
    )


def fit_logistic(
    X,
    y,
    *,
    weight=None,
    l2: float = 0.0,
    unpenalized=None,
    feature_names: Iterable[str] | None = None,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> LogisticFit:
    """Fit ``P(y = 1) = sigmoid(X @ beta)`` by Newton's method.

    Minimises ``sum_i w_i [log(1 + exp(x_i.beta)) - y_i x_i.beta]
    + l2/2 * sum_{j penalised} beta_j**2``. There is no implicit intercept:
    add a column of ones for one (and usually mark it ``unpenalized``).

    Parameters
    ----------
    X : array_like, shape (n, p)
        Feature rows (for Bradley-Terry, feature differences chosen -
        rejected). float32 and float64 arrays are read in place; other
        numeric dtypes are converted to float64.
    y : array_like, shape (n,)
        Targets in [0, 1]; fractions are soft labels, 0.5 a tie.
    weight : array_like, shape (n,), optional
        Non-negative row weights (default 1). Rows with weight 0 are ignored.
    l2 : float, default 0
        Ridge strength.
    unpenalized : boolean mask, feature names or column indices, optional
        Coefficients the ridge leaves alone (for example an intercept).
    feature_names : sequence of str, optional
        Names used in warnings, ``summary()`` and ``separated_features``.
    tol : float, default 1e-8
        Stop when ``max_j |dL/dbeta_j| / sum_i w_i <= tol`` (a per-row
        gradient, so its meaning does not change with ``n``).
    max_iter : int, default 100
        At most this many Newton steps.

    Returns
    -------
    LogisticFit

    Raises
    ------
    InputError
        Non-finite ``X``, ``y`` outside [0, 1], negative weights, shape
        mismatches, bad options. The message names the row and column.
    FitError
        A Hessian that is singular at the optimum without separation: a
        zero or collinear feature that nothing penalises.

    Warns
    -----
    SeparationWarning
        When the unpenalised estimate is infinite (perfect or quasi-complete
        separation along the named features). ``coef_``, ``se_`` and the rest
        are then None, with ``refused_reason``.
    ConvergenceWarning
        When ``max_iter`` ran out or the line search stalled before ``tol``.

    Notes
    -----
    Standard errors come from the inverse Hessian of the *penalised*
    objective at the optimum; with ``l2 > 0`` they are the Gaussian-prior
    posterior standard deviations, and ``z`` / ``p_values`` inherit that
    reading. Separation is detected exactly for single features; for
    combinations of features, the direction Newton drifts along is certified
    to separate the rows (Albert & Anderson, 1984), after a private
    continuation of the iterations, so the verdict does not depend on ``tol``
    or ``max_iter``. With ``l2 > 0`` a separation the ridge bounds is only
    reported in ``separated_features`` (single features, or the fitted
    direction when it separates), without a warning.
    """
    x, yv, w, names, mask = _prepare(X, y, weight, unpenalized, feature_names)
    l2, tol, max_iter = _options(l2, tol, max_iter)
    raw = _core.fit_logistic(x, yv, w, l2, mask, tol, max_iter)
    fit = _package(raw, names, l2, mask)
    if fit.refused_reason is not None:
        warnings.warn(
            f"logistic fit: {fit.refused_reason}", SeparationWarning, stacklevel=2
        )
    elif not fit.converged_:
        warnings.warn(
            f"logistic fit stopped ({fit.status}) after {fit.n_iter_} iterations "
            f"with gradient {fit.grad_norm_:.3g} > tol {tol:g}",
            ConvergenceWarning,
            stacklevel=2,
        )
    return fit


def cross_validate_logistic(
    X,
    y,
    *,
    k: int = 5,
    random_state: int = 0,
    weight=None,
    l2: float = 0.0,
    unpenalized=None,
    feature_names: Iterable[str] | None = None,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> dict:
    """Held-out accuracy and log-loss of :func:`fit_logistic` by k-fold
    cross-validation.

    Parameters
    ----------
    X, y, weight, l2, unpenalized, feature_names, tol, max_iter
        As in :func:`fit_logistic`.
    k : int, default 5
        Number of folds, ``2 <= k <= n``.
    random_state : int, default 0
        Seed of the fold assignment: a Fisher-Yates permutation drawn from
        SplitMix64; the row at position ``q`` goes to fold ``q mod k``. The
        same seed gives the same folds on every platform and thread count.

    Returns
    -------
    dict
        ``accuracy`` and ``log_loss`` pooled over all held-out rows
        (weighted means), ``fold_accuracy``, ``fold_log_loss``, ``fold_n``,
        ``fold_weight``, ``fold_status``, ``fold_separated_features``,
        ``fold_of_row`` (ndarray), ``k``, ``random_state`` and
        ``refused_reason``.

    Warns
    -----
    SeparationWarning
        When a training fold is separated (unpenalised): that fold's metrics
        and the pooled ones are None.
    ConvergenceWarning
        When a fold's fit did not converge.

    Notes
    -----
    A prediction counts as right when ``sigmoid(x.beta) > 1/2`` and
    ``y > 1/2``, or both are below; a margin of exactly 0 or a target of
    exactly 1/2 earns half a point. The log-loss is the cross-entropy
    ``log(1 + exp(eta)) - y eta``, which allows soft targets.
    """
    x, yv, w, names, mask = _prepare(X, y, weight, unpenalized, feature_names)
    l2, tol, max_iter = _options(l2, tol, max_iter)
    try:
        k, seed = operator.index(k), operator.index(random_state)
    except TypeError:
        raise InputError("k and random_state must be integers") from None
    if not 0 <= seed < 2**64:
        raise InputError(f"random_state = {seed}; expected 0 <= random_state < 2**64")
    raw = _core.kfold_logistic(x, yv, w, k, seed, l2, mask, tol, max_iter)
    sep = [tuple(names[j] for j in s) for s in raw["fold_separated"]]
    bad = [f for f, s in enumerate(raw["fold_status"]) if s == "separated"]
    refused = None
    if bad:
        feats = sorted({n for f in bad for n in sep[f]})
        refused = (
            f"folds {bad} have no finite maximum-likelihood estimate (separated "
            f"along {', '.join(feats)}); set l2 > 0"
        )
        warnings.warn(f"cross-validation: {refused}", SeparationWarning, stacklevel=2)
    stalled = [
        f
        for f, s in enumerate(raw["fold_status"])
        if s in ("max_iter", "line_search_failed")
    ]
    if stalled:
        warnings.warn(
            f"cross-validation: the fits of folds {stalled} did not converge",
            ConvergenceWarning,
            stacklevel=2,
        )
    return {
        "k": k,
        "random_state": seed,
        "accuracy": raw["accuracy"],
        "log_loss": raw["log_loss"],
        "fold_accuracy": raw["fold_accuracy"],
        "fold_log_loss": raw["fold_log_loss"],
        "fold_n": raw["fold_n"],
        "fold_weight": raw["fold_weight"],
        "fold_status": raw["fold_status"],
        "fold_separated_features": sep,
        "fold_of_row": raw["fold_of_row"],
        "refused_reason": refused,
    }
