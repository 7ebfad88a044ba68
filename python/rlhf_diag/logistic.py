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

__all__ = [
    "LogisticFit",
    "TwoWayFit",
    "calibration_table",
    "cross_validate_logistic",
    "fit_logistic",
    "fit_logistic_groups",
    "fit_two_way",
]

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
    solver: str = "newton"
    l1: float = 0.0
    se_reason: str | None = None

    def summary(self) -> str:
        """A plain-text table of the coefficients and the fit's diagnostics."""
        lines = [
            (
                f"Logistic fit ({self.solver}): {self.status} after "
                f"{self.n_iter_} iterations"
            ),
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
        if self.se_ is None:
            lines.append(f"standard errors: {self.se_reason}")
            lines.extend(
                f"{n:<24}{c:>11.4g}" for n, c in zip(self.feature_names, self.coef_)
            )
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
            "solver": self.solver,
            "l1": self.l1,
            "se_reason": self.se_reason,
        }

    def to_polars(self):
        """The coefficient table as a polars DataFrame (empty when refused)."""
        import polars as pl

        if self.coef_ is None:
            return pl.DataFrame({"feature": [], "coef": []})
        if self.se_ is None:
            return pl.DataFrame(
                {"feature": list(self.feature_names), "coef": self.coef_}
            )
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


def _penalty_words(l2: float, mask: list[bool] | None, names, l1: float = 0.0) -> str:
    if l2 == 0.0 and l1 == 0.0:
        return "none"
    free = [n for n, m in zip(names, mask or []) if m]
    where = "all coefficients" + (f" except {', '.join(free)}" if free else "")
    kinds = [f"L2 (l2={l2:g})"] * (l2 > 0) + [f"L1 (l1={l1:g})"] * (l1 > 0)
    return f"{' + '.join(kinds)} on {where}"


#: Above this many features ``solver="auto"`` runs L-BFGS (the core's
#: ``NEWTON_MAX_P``).
NEWTON_MAX_P = 32
#: ``se="auto"`` skips the Hessian pass after L-BFGS above this n * p^2.
SE_AUTO_MAX_WORK = 2e8


@dataclass(frozen=True)
class _Solve:
    """Validated solver settings, as the core takes them."""

    l1: float
    solver: str
    history: int
    covariance: bool
    resolved: str

    def args(self) -> tuple:
        return (self.l1, self.solver, self.history, self.covariance)


def _solve(l1, solver, se, history, shape) -> _Solve:
    n, p = shape
    try:
        l1, history = float(l1), operator.index(history)
    except TypeError as exc:
        raise InputError(f"l1 and history must be numbers: {exc}") from None
    if not (np.isfinite(l1) and l1 >= 0):
        raise InputError(f"l1 = {l1}; expected a finite value >= 0")
    if solver not in ("auto", "newton", "lbfgs"):
        raise InputError(f"solver = {solver!r}; expected 'auto', 'newton' or 'lbfgs'")
    if l1 > 0 and solver == "newton":
        raise InputError("l1 > 0 needs solver='lbfgs' (OWL-QN) or 'auto'")
    if history < 1:
        raise InputError(f"history = {history}; expected at least 1")
    resolved = solver
    if solver == "auto":
        resolved = "lbfgs" if (l1 > 0 or p > NEWTON_MAX_P) else "newton"
    if se == "auto":
        se = resolved == "newton" or n * p * p <= SE_AUTO_MAX_WORK
    elif not isinstance(se, (bool, np.bool_)):
        raise InputError(f"se = {se!r}; expected True, False or 'auto'")
    return _Solve(l1, solver, history, bool(se) and l1 == 0, resolved)


def _se_reason(solve: _Solve, p: int) -> str | None:
    if solve.covariance:
        return None
    if solve.l1 > 0:
        return "not computed for an L1-penalised fit (no valid Wald errors)"
    return (
        f"not computed (se=False, or se='auto' with n * p^2 above "
        f"{SE_AUTO_MAX_WORK:g} for L-BFGS; p = {p})"
    )


def _options(l2, tol, max_iter, default_iter=100) -> tuple[float, float, int]:
    if max_iter is None:
        max_iter = default_iter
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


def _default_iter(solve: _Solve) -> int:
    return 100 if solve.resolved == "newton" else 1000


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


def _package(
    raw: dict, names, l2: float, mask, solve: _Solve | None = None
) -> LogisticFit:
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
        if se is not None:
            ci = np.column_stack([coef - Z95 * se, coef + Z95 * se])
            z = coef / se
            pv = 2.0 * stats.norm.sf(np.abs(z))
        nll, obj = raw["nll"], raw["nll"] + raw["penalty"]
    l1 = 0.0 if solve is None else solve.l1
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
        penalty=_penalty_words(l2, mask, names, l1),
        l2=l2,
        n_obs=int(raw["n_obs"]),
        total_weight=float(raw["total_weight"]),
        ridge_steps=int(raw["ridge_steps"]),
        refused_reason=refused,
        solver=raw.get("solver", "newton"),
        l1=l1,
        se_reason=None
        if refused is not None or se is not None or solve is None
        else _se_reason(solve, len(names)),
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
    max_iter: int | None = None,
    l1: float = 0.0,
    solver: str = "auto",
    se="auto",
    history: int = 10,
) -> LogisticFit:
    """Fit ``P(y = 1) = sigmoid(X @ beta)`` by Newton's method or L-BFGS.

    Minimises ``sum_i w_i [log(1 + exp(x_i.beta)) - y_i x_i.beta]
    + l2/2 * sum_{j penalised} beta_j**2 + l1 * sum_{j penalised} |beta_j|``.
    There is no implicit intercept: add a column of ones for one (and
    usually mark it ``unpenalized``).

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
        Coefficients the penalties leave alone (for example an intercept).
    feature_names : sequence of str, optional
        Names used in warnings, ``summary()`` and ``separated_features``.
    tol : float, default 1e-8
        Stop when ``max_j |dL/dbeta_j| / sum_i w_i <= tol`` (a per-row
        gradient, so its meaning does not change with ``n``; with ``l1`` the
        pseudo-gradient of OWL-QN).
    max_iter : int, optional
        At most this many steps; default 100 for Newton, 1000 for L-BFGS.
    l1 : float, default 0
        Lasso strength (needs L-BFGS, which then runs as OWL-QN and gives
        exact zeros).
    solver : {"auto", "newton", "lbfgs"}
        ``"auto"``: Newton for at most 32 features without ``l1``, else
        L-BFGS (each pass O(n p) instead of O(n p^2)).
    se : bool or "auto", default "auto"
        Compute the inverse Hessian: free after Newton, one extra O(n p^2)
        pass after L-BFGS (``"auto"`` does it when n p^2 <= 2e8). Never with
        ``l1 > 0``; then ``se_`` is None with ``se_reason``.
    history : int, default 10
        Quasi-Newton pairs kept by L-BFGS.

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
    solve = _solve(l1, solver, se, history, x.shape)
    l2, tol, max_iter = _options(l2, tol, max_iter, _default_iter(solve))
    raw = _core.fit_logistic(x, yv, w, l2, mask, tol, max_iter, *solve.args())
    fit = _package(raw, names, l2, mask, solve)
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
    max_iter: int | None = None,
    l1: float = 0.0,
    solver: str = "auto",
    history: int = 10,
    calibration_bins: int = 10,
    symmetric: bool = False,
) -> dict:
    """Held-out accuracy and log-loss of :func:`fit_logistic` by k-fold
    cross-validation.

    Parameters
    ----------
    X, y, weight, l2, unpenalized, feature_names, tol, max_iter, l1, solver,
    history
        As in :func:`fit_logistic` (no standard errors are computed).
    k : int, default 5
        Number of folds, ``2 <= k <= n``.
    random_state : int, default 0
        Seed of the fold assignment: a Fisher-Yates permutation drawn from
        SplitMix64; the row at position ``q`` goes to fold ``q mod k``. The
        same seed gives the same folds on every platform and thread count.
    calibration_bins : int, default 10
        Equal-width bins of the held-out probability in the calibration
        table.
    symmetric : bool, default False
        Calibrate both orientations of every row (see
        :func:`calibration_table`): right for Bradley-Terry rows with the
        chosen side always first (``y`` all 1).

    Returns
    -------
    dict
        ``accuracy`` and ``log_loss`` pooled over all held-out rows
        (weighted means), ``fold_accuracy``, ``fold_log_loss``, ``fold_n``,
        ``fold_weight``, ``fold_status``, ``fold_separated_features``,
        ``fold_of_row`` (ndarray), ``held_out_prob`` (ndarray: each row's
        probability under the fit that held it out, or None),
        ``calibration`` (see :func:`calibration_table`, or None), ``k``,
        ``random_state`` and ``refused_reason``.

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

    Each fold's fit starts from the coefficients of the previous fold's when
    that fit converged (two training sets share all but two folds of rows),
    which saves most of the Newton steps; it agrees with a fit from zero on
    the same rows to the tolerance ``tol``, and a separated training set is
    still reported as separated.
    """
    x, yv, w, names, mask = _prepare(X, y, weight, unpenalized, feature_names)
    solve = _solve(l1, solver, False, history, x.shape)
    l2, tol, max_iter = _options(l2, tol, max_iter, _default_iter(solve))
    try:
        k, seed = operator.index(k), operator.index(random_state)
    except TypeError:
        raise InputError("k and random_state must be integers") from None
    if not 0 <= seed < 2**64:
        raise InputError(f"random_state = {seed}; expected 0 <= random_state < 2**64")
    raw = _core.kfold_logistic(
        x, yv, w, k, seed, l2, mask, tol, max_iter, *solve.args()
    )
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
        "held_out_prob": raw["held_out_prob"],
        "calibration": None
        if raw["held_out_prob"] is None
        else calibration_table(
            raw["held_out_prob"],
            yv,
            weight=w,
            n_bins=calibration_bins,
            symmetric=symmetric,
        ),
        "refused_reason": refused,
    }


def fit_logistic_groups(
    X,
    y,
    groups: Sequence,
    *,
    weight=None,
    l2: float = 0.0,
    unpenalized=None,
    feature_names: Iterable[str] | None = None,
    tol: float = 1e-8,
    max_iter: int | None = None,
    l1: float = 0.0,
    solver: str = "auto",
    se="auto",
    history: int = 10,
) -> list[LogisticFit]:
    """One :func:`fit_logistic` per group of rows, run in parallel.

    Parameters
    ----------
    X, y, weight, l2, unpenalized, feature_names, tol, max_iter, l1, solver,
    se, history
        As in :func:`fit_logistic`; every group shares them.
    groups : sequence of integer arrays
        Row indices of each group. A row may belong to several groups (rows
        shared by every fit, such as prior pseudo-rows, are stored once).

    Returns
    -------
    list of LogisticFit
        One per group, in order; each equals :func:`fit_logistic` on
        ``X[rows], y[rows]``.

    Warns
    -----
    SeparationWarning, ConvergenceWarning
        Once, naming the groups concerned.
    """
    x, yv, w, names, mask = _prepare(X, y, weight, unpenalized, feature_names)
    solve = _solve(l1, solver, se, history, x.shape)
    l2, tol, max_iter = _options(l2, tol, max_iter, _default_iter(solve))
    idx = [np.asarray(g, dtype=np.int64).ravel() for g in groups]
    if not idx:
        raise InputError("groups is empty; expected at least one group of rows")
    for j, g in enumerate(idx):
        if g.size and (g.min() < 0 or g.max() >= x.shape[0]):
            raise InputError(f"group {j}: row indices must lie in 0..{x.shape[0] - 1}")
    offsets = np.concatenate([[0], np.cumsum([g.size for g in idx])]).astype(np.uint64)
    flat = np.concatenate(idx).astype(np.uint64)
    raws = _core.fit_logistic_groups(
        x, yv, offsets, flat, w, l2, mask, tol, max_iter, *solve.args()
    )
    fits = [_package(raw, names, l2, mask, solve) for raw in raws]
    refused = [j for j, f in enumerate(fits) if f.refused_reason is not None]
    if refused:
        warnings.warn(
            f"logistic fits of groups {refused} are separated: "
            f"{fits[refused[0]].refused_reason}",
            SeparationWarning,
            stacklevel=2,
        )
    stalled = [j for j, f in enumerate(fits) if not f.converged_ and j not in refused]
    if stalled:
        warnings.warn(
            f"logistic fits of groups {stalled} stopped before tol {tol:g}",
            ConvergenceWarning,
            stacklevel=2,
        )
    return fits


@dataclass(frozen=True)
class TwoWayFit:
    """Result of :func:`fit_two_way`.

    Attributes
    ----------
    beta : ndarray, shape (n_groups, q)
        Per-group coefficients on the covariates ``Z``.
    effects : ndarray, shape (n_items,)
        Per-item effects (ridge-penalised).
    n_iter : int
    grad_norm : float
        ``max |gradient|`` over the total weight, at the end.
    status : str
        ``"converged"``, ``"max_iter"`` or ``"line_search_failed"``.
    objective : float
        Penalised negative log-likelihood at the end.
    """

    beta: np.ndarray
    effects: np.ndarray
    n_iter: int
    grad_norm: float
    status: str
    objective: float


def fit_two_way(
    Z,
    group,
    item,
    y,
    *,
    n_groups: int | None = None,
    n_items: int | None = None,
    weight=None,
    l2: float = 0.1,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> TwoWayFit:
    """Two-way logistic model: per-group coefficients plus per-item effects.

    ``logit P(y_r = 1) = Z_r . beta[group_r] + effects[item_r]``, with soft
    targets and a ridge ``l2 / 2 |effects|^2``; the group coefficients are
    unpenalised. Fitted by Newton's method through the Schur complement over
    the groups' block (see ``rust/core/src/logistic/two_way.rs``), so its
    cost grows with the number of items only linearly.

    Parameters
    ----------
    Z : array_like, shape (n, q)
        Covariates whose coefficients vary by group (a column of ones gives
        each group an intercept).
    group, item : array_like of int, shape (n,)
        Group and item of each row, from 0.
    y : array_like, shape (n,)
        Targets in [0, 1].
    n_groups, n_items : int, optional
        Default ``max + 1`` of ``group`` / ``item``.
    weight : array_like, shape (n,), optional
        Row weights (default 1).
    l2 : float, default 0.1
        Ridge on the item effects. It also fixes the direction the data
        cannot see when every group has an intercept (a shift of every item
        effect against every intercept).
    tol, max_iter
        Stop when ``max |gradient| / total weight <= tol``, or after
        ``max_iter`` Newton steps.

    Returns
    -------
    TwoWayFit

    Warns
    -----
    ConvergenceWarning
        When the fit stopped before ``tol`` (for instance a group whose
        targets are all 0 drifts to minus infinity).
    """
    z = np.ascontiguousarray(np.asarray(Z, dtype=np.float64))
    if z.ndim != 2:
        raise InputError(f"Z must be 2-D (rows x covariates), got shape {z.shape}")
    n = z.shape[0]
    gv = np.asarray(group).ravel()
    iv = np.asarray(item).ravel()
    for name, v in (("group", gv), ("item", iv)):
        if v.shape != (n,) or not np.issubdtype(v.dtype, np.integer):
            raise InputError(f"{name} must hold {n} integers, one per row of Z")
        if n and v.min() < 0:
            raise InputError(f"{name} holds a negative index")
    yv = _as_vector(y, "y", n)
    w = None if weight is None else _as_vector(weight, "weight", n)
    ng = int(gv.max()) + 1 if n_groups is None and n else int(n_groups or 0)
    ni = int(iv.max()) + 1 if n_items is None and n else int(n_items or 0)
    raw = _core.fit_two_way(
        z,
        gv.astype(np.uint64),
        iv.astype(np.uint64),
        yv,
        ng,
        ni,
        w,
        float(l2),
        float(tol),
        int(max_iter),
    )
    fit = TwoWayFit(
        beta=_frozen(raw["beta"]),
        effects=_frozen(raw["g"]),
        n_iter=int(raw["n_iter"]),
        grad_norm=float(raw["grad_norm"]),
        status=raw["status"],
        objective=float(raw["objective"]),
    )
    if fit.status != "converged":
        warnings.warn(
            f"two-way logistic fit stopped ({fit.status}) after {fit.n_iter} "
            f"iterations with gradient {fit.grad_norm:.3g} > tol {tol:g}",
            ConvergenceWarning,
            stacklevel=2,
        )
    return fit


def calibration_table(prob, y, *, weight=None, n_bins: int = 10, symmetric=False):
    """Reliability table of predicted probabilities against observed targets.

    Parameters
    ----------
    prob : array_like, shape (n,)
        Predicted ``P(y = 1)`` (held-out predictions, for an honest table).
    y : array_like, shape (n,)
        Targets in [0, 1] (soft targets allowed).
    weight : array_like, optional
        Row weights (default 1).
    n_bins : int, default 10
        Equal-width bins over [0, 1]; the last bin includes 1.
    symmetric : bool, default False
        Count every row twice, as ``(prob, y)`` and ``(1 - prob, 1 - y)``.
        For Bradley-Terry rows written with the chosen side first (``y``
        all 1) this is the only meaningful table: the model is symmetric
        under swapping the sides, and the swapped rows supply the losses.

    Returns
    -------
    dict
        ``bins``: a list of ``{low, high, n, weight, mean_predicted,
        mean_observed}`` for the non-empty bins; ``ece``: the weighted mean
        of ``|mean_predicted - mean_observed|`` over bins (expected
        calibration error); ``n_bins``, ``symmetric``.
    """
    p = np.asarray(prob, dtype=np.float64).ravel()
    t = _as_vector(y, "y", p.shape[0])
    w = np.ones_like(p) if weight is None else _as_vector(weight, "weight", p.shape[0])
    if not np.all(np.isfinite(p)) or p.min(initial=0) < 0 or p.max(initial=0) > 1:
        raise InputError("prob must hold finite probabilities in [0, 1]")
    if operator.index(n_bins) < 1:
        raise InputError(f"n_bins = {n_bins}; expected at least 1")
    if symmetric:
        p, t, w = np.concatenate([p, 1 - p]), np.concatenate([t, 1 - t]), np.tile(w, 2)
    keep = w > 0
    p, t, w = p[keep], t[keep], w[keep]
    if w.sum() == 0:
        raise InputError("calibration table: every weight is zero")
    idx = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        m = idx == b
        if not m.any():
            continue
        wb = float(w[m].sum())
        pred = float(np.average(p[m], weights=w[m]))
        obs = float(np.average(t[m], weights=w[m]))
        ece += wb * abs(pred - obs)
        bins.append(
            {
                "low": b / n_bins,
                "high": (b + 1) / n_bins,
                "n": int(m.sum()),
                "weight": wb,
                "mean_predicted": pred,
                "mean_observed": obs,
            }
        )
    return {
        "bins": bins,
        "ece": ece / float(w.sum()),
        "n_bins": int(n_bins),
        "symmetric": bool(symmetric),
    }
