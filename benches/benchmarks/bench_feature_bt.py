"""Feature-level Bradley-Terry (logistic regression on feature differences)
against scikit-learn's lbfgs.

Input: ``n_rows x 64`` float32 differences from
:func:`rlhf_diag.simulate_text.simulate_style_differences` with known
coefficients. Both fits run unpenalised, without intercept, to the same
stopping rule (max |gradient| / n <= 1e-8); ``track_`` figures are the
largest coefficient error against the truth the data were drawn from.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
from rlhf_diag import simulate_text
from rlhf_diag.logistic import fit_logistic

from ._common import Big, cached, peer, reset_peak, sizes, source_key

N_FEATURES = 64
TOL = 1e-8
#: Solvers to time: the default call, plus each named solver when the
#: installed version takes ``solver=``.
SOLVERS = sizes(
    ["default"],
    ["newton", "lbfgs"]
    if "solver" in inspect.signature(fit_logistic).parameters
    else [],
)


def load(n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def build(folder):
        sim = simulate_text.simulate_style_differences(
            n_rows, N_FEATURES, seed=5, dtype=np.float32
        )
        np.save(folder / "X.npy", sim.X)
        np.save(folder / "y.npy", sim.y)
        np.save(folder / "coef.npy", sim.coef)

    folder = cached(f"features-{n_rows}x{N_FEATURES}", source_key(simulate_text), build)
    return tuple(np.load(folder / f"{name}.npy") for name in ("X", "y", "coef"))


def fit_ours(X, y, solver: str):
    kwargs = {} if solver == "default" else {"solver": solver}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_logistic(X, y, tol=TOL, **kwargs)


class FeatureBT(Big):
    """rlhf_diag's fit (the default call picks the solver)."""

    params = [sizes([100_000], [1_000_000, 10_000_000]), SOLVERS]
    param_names = ["n_rows", "solver"]
    smoke = (20_000, "default")

    def setup(self, n_rows, solver):
        if solver == "newton" and n_rows > 1_000_000:
            raise NotImplementedError("Newton at 1e7 x 64 is left to the default")
        self.X, self.y, self.coef = load(n_rows)
        reset_peak()

    def time_ours(self, n_rows, solver):
        fit_ours(self.X, self.y, solver)

    def peakmem_ours(self, n_rows, solver):
        fit_ours(self.X, self.y, solver)

    def track_ours_coef_error(self, n_rows, solver):
        return float(np.abs(fit_ours(self.X, self.y, solver).coef_ - self.coef).max())

    track_ours_coef_error.unit = "coef"


def fit_sklearn(linear_model, X, y):
    model = linear_model.LogisticRegression(
        C=np.inf, fit_intercept=False, solver="lbfgs", tol=TOL, max_iter=10_000
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


class FeatureBTSklearn(Big):
    """Peer: ``sklearn.linear_model.LogisticRegression(solver="lbfgs")``."""

    params = [sizes([100_000], [1_000_000])]
    param_names = ["n_rows"]
    smoke = (20_000,)

    def setup(self, n_rows):
        self.lm = peer("sklearn.linear_model")
        self.X, self.y, self.coef = load(n_rows)
        reset_peak()

    def time_sklearn(self, n_rows):
        fit_sklearn(self.lm, self.X, self.y)

    def peakmem_sklearn(self, n_rows):
        fit_sklearn(self.lm, self.X, self.y)

    def track_sklearn_coef_error(self, n_rows):
        model = fit_sklearn(self.lm, self.X, self.y)
        return float(np.abs(model.coef_[0] - self.coef).max())

    track_sklearn_coef_error.unit = "coef"
