"""Tests of rlhf_diag.logistic against closed forms, a slow scipy reference
and known-truth simulations."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from rlhf_diag.exceptions import (
    ConvergenceWarning,
    FitError,
    InputError,
    SeparationWarning,
)
from rlhf_diag.logistic import _as_matrix, cross_validate_logistic, fit_logistic
from scipy import optimize
from scipy.special import expit, logit

THETA = 0.5 * (logit(0.8) + logit(0.4))  # 0.490415
GAMMA = 0.5 * (logit(0.8) - logit(0.4))  # 0.895880


def battles(wins_plus: int, wins_minus: int):
    """A vs B, 20 battles; d = sign(len_a - len_b) is +1 for the first 10."""
    d = np.repeat([1.0, -1.0], 10)
    y = np.concatenate([np.arange(10) < wins_plus, np.arange(10) < wins_minus])
    return np.column_stack([np.ones(20), d]), y.astype(float)


def simulate(n, beta, seed):
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.normal(size=(n, len(beta) - 1))])
    y = (rng.random(n) < expit(x @ beta)).astype(float)
    return x, y


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---------------------------------------------------------------- closed form


def test_closed_form_twenty_battles(no_warnings):
    assert THETA == pytest.approx(0.490415, abs=1e-6)
    assert GAMMA == pytest.approx(0.895880, abs=1e-6)
    x, y = battles(8, 4)
    fit = fit_logistic(x, y, feature_names=["intercept", "d"])
    np.testing.assert_allclose(fit.coef_, [0.490415, 0.895880], atol=1e-6)
    np.testing.assert_allclose(fit.coef_, [THETA, GAMMA], atol=1e-8)
    # Saturated model: var(theta +- gamma) = 1 / (10 p (1 - p)) per group.
    va, vb = 1 / (10 * 0.8 * 0.2), 1 / (10 * 0.4 * 0.6)
    np.testing.assert_allclose(fit.se_, np.sqrt((va + vb) / 4) * np.ones(2), rtol=1e-8)
    assert fit.cov_[0, 1] == pytest.approx((va - vb) / 4, rel=1e-8)
    np.testing.assert_allclose(
        fit.ci95_[:, 0], fit.coef_ - 1.959964 * fit.se_, rtol=1e-6
    )
    assert fit.p_values[1] == pytest.approx(2 * (1 - 0.9605), abs=2e-3)
    assert fit.converged_ and fit.status == "converged" and fit.grad_norm_ <= 1e-8
    assert fit.separated_features == () and fit.penalty == "none"
    text = fit.summary()
    assert "intercept" in text and "0.4904" in text and "0.8959" in text


def test_aggregated_weighted_rows_give_the_same_fit(no_warnings):
    x, y = battles(8, 4)
    full = fit_logistic(x, y)
    xa = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, -1.0], [1.0, -1.0]])
    agg = fit_logistic(xa, [1, 0, 1, 0], weight=[8, 2, 4, 6])
    np.testing.assert_allclose(agg.coef_, full.coef_, atol=1e-10)
    np.testing.assert_allclose(agg.se_, full.se_, atol=1e-10)
    assert agg.nll_ == pytest.approx(full.nll_, rel=1e-12)
    # Soft targets carry the same information: two rows, y = win rate.
    soft = fit_logistic(xa[1:3], [0.8, 0.4], weight=[10, 10])
    np.testing.assert_allclose(soft.coef_, [THETA, GAMMA], atol=1e-8)


# ------------------------------------------------------------------ separation


@pytest.mark.parametrize("max_iter", [1, 2, 3, 5, 25, 100])
@pytest.mark.parametrize("tol", [1e-2, 1e-8])
def test_separation_is_refused_whatever_the_budget(max_iter, tol):
    x, y = battles(10, 0)
    with pytest.warns(SeparationWarning, match="separated along d") as rec:
        fit = fit_logistic(
            x, y, feature_names=["intercept", "d"], max_iter=max_iter, tol=tol
        )
    assert len(rec) == 1 and rec[0].filename == __file__
    assert fit.status == "separated" and fit.separated_features == ("d",)
    assert fit.coef_ is None and fit.se_ is None and fit.ci95_ is None
    assert fit.nll_ is None and "iteration budget" in fit.refused_reason
    assert "coefficients refused" in fit.summary()
    assert fit.to_dict()["coef"] is None


def test_separation_with_ridge_is_finite_and_reported(no_warnings):
    x, y = battles(10, 0)
    fit = fit_logistic(x, y, feature_names=["intercept", "d"], l2=1.0)
    assert fit.status == "converged" and fit.separated_features == ("d",)
    # By symmetry theta = 0 and the stationarity condition is
    # 20 sigmoid(-gamma) = gamma.
    gamma = optimize.brentq(lambda g: 20 * expit(-g) - g, 0, 20, xtol=1e-14)
    np.testing.assert_allclose(fit.coef_, [0.0, gamma], atol=1e-8)
    assert fit.refused_reason is None and np.all(np.isfinite(fit.se_))
    assert fit.penalty == "L2 (l2=1) on all coefficients"


def test_separation_along_an_unpenalised_feature_is_still_refused():
    x, y = battles(10, 0)
    with pytest.warns(SeparationWarning, match="d"):
        fit = fit_logistic(
            x, y, feature_names=["intercept", "d"], l2=1.0, unpenalized=["d"]
        )
    assert fit.coef_ is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = fit_logistic(
            x, y, feature_names=["intercept", "d"], l2=1.0, unpenalized=[True, False]
        )
    assert ok.coef_ is not None
    assert ok.penalty == "L2 (l2=1) on all coefficients except intercept"


def test_separation_by_a_combination_of_features():
    # y = 1 exactly when a + b > 0; neither a nor b separates alone, and the
    # rows on a + b = 0 have both outcomes (quasi-complete separation).
    a, b = np.meshgrid(np.arange(-3, 4.0), np.arange(-3, 4.0))
    a, b = a.ravel(), b.ravel()
    on = a + b == 0
    x = np.column_stack([np.ones(a.size + on.sum()), np.r_[a, a[on]], np.r_[b, b[on]]])
    y = np.r_[(a + b > 0) | on, np.zeros(on.sum(), bool)].astype(float)
    with pytest.warns(SeparationWarning, match="a, b"):
        fit = fit_logistic(x, y, feature_names=["one", "a", "b"])
    assert fit.separated_features == ("a", "b")
    v = fit.separating_direction
    assert v[0] == 0 and v[1] == pytest.approx(v[2], rel=1e-6) and v[1] > 0


def test_soft_targets_prevent_separation(no_warnings):
    # The separated layout, but one battle in each group was a tie (y = 0.5):
    # the win rates become 9.5 / 10 and 0.5 / 10, and the MLE is finite.
    x, y = battles(10, 0)
    y[[0, 10]] = 0.5
    fit = fit_logistic(x, y, feature_names=["intercept", "d"])
    assert fit.status == "converged" and fit.separated_features == ()
    np.testing.assert_allclose(fit.coef_, [0.0, logit(0.95)], atol=1e-8)


# --------------------------------------------------- agreement with reference


def reference_fit(x, y, w, l2, pen):
    """Slow, readable reference: scipy BFGS then Newton-CG on the same
    objective, and the numpy Hessian inverted."""

    def f(b):
        eta = x @ b
        return np.sum(w * (np.logaddexp(0, eta) - y * eta)) + 0.5 * l2 * np.sum(
            pen * b * b
        )

    def g(b):
        return x.T @ (w * (expit(x @ b) - y)) + l2 * pen * b

    def h(b):
        s = expit(x @ b)
        return (x * (w * s * (1 - s))[:, None]).T @ x + np.diag(l2 * pen)

    b0 = optimize.minimize(
        f,
        np.zeros(x.shape[1]),
        jac=g,
        method="BFGS",
        options={"gtol": 1e-10, "maxiter": 10_000},
    ).x
    res = optimize.minimize(
        f,
        b0,
        jac=g,
        hess=h,
        method="Newton-CG",
        options={"xtol": 1e-14, "maxiter": 1000},
    )
    cov = np.linalg.inv(h(res.x))
    # The numerically differentiated gradient gives the same Hessian.
    eps = 1e-6
    fd = np.column_stack(
        [
            (g(res.x + eps * e) - g(res.x - eps * e)) / (2 * eps)
            for e in np.eye(x.shape[1])
        ]
    )
    np.testing.assert_allclose(fd, h(res.x), rtol=1e-5, atol=1e-6)
    return res.x, np.sqrt(np.diag(cov))


@pytest.mark.parametrize("case", ["plain", "weights", "soft", "l2_free_intercept"])
def test_agrees_with_scipy_reference(case, no_warnings):
    rng = np.random.default_rng(5)
    n, beta = 2000, np.array([0.3, 1.0, -0.5, 0.25, 0.0])
    x, y = simulate(n, beta, 11)
    w, l2, pen = np.ones(n), 0.0, np.ones(5)
    kw = {}
    if case == "weights":
        w = rng.exponential(size=n)
        w[:50] = 0.0
        kw["weight"] = w
    if case == "soft":
        y[rng.random(n) < 0.2] = 0.5
        y[:100] = rng.random(100)
    if case == "l2_free_intercept":
        l2, pen = 25.0, np.array([0.0, 1, 1, 1, 1])
        kw.update(l2=l2, unpenalized=[True, False, False, False, False])
    fit = fit_logistic(x, y, **kw)
    ref_coef, ref_se = reference_fit(x, y, w, l2, pen)
    np.testing.assert_allclose(fit.coef_, ref_coef, atol=1e-7)
    np.testing.assert_allclose(fit.se_, ref_se, rtol=1e-7)
    eta = x @ fit.coef_
    assert fit.nll_ == pytest.approx(
        np.sum(w * (np.logaddexp(0, eta) - y * eta)), rel=1e-12
    )
    assert fit.n_obs == int((w > 0).sum()) and fit.total_weight == pytest.approx(
        w.sum()
    )


def test_known_truth_is_recovered(no_warnings):
    beta = np.array([-0.4, 1.2, -0.8, 0.3])
    x, y = simulate(20_000, beta, 2024)
    fit = fit_logistic(x, y)
    assert np.all(np.abs(fit.coef_ - beta) < 4 * fit.se_), (fit.coef_, fit.se_)
    assert np.all(fit.se_ < 0.03)


# ------------------------------------------------------------- invariances


def test_float32_matches_float64_and_is_read_in_place(no_warnings):
    x, y = simulate(3000, np.array([0.1, 0.7, -0.3]), 3)
    x32 = x.astype(np.float32)
    assert np.shares_memory(_as_matrix(x32), x32)
    a = fit_logistic(x32, y)
    b = fit_logistic(x32.astype(np.float64), y)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.coef_, fit_logistic(x, y).coef_, atol=1e-5)


def test_row_order_and_label_flip_invariance(no_warnings):
    x, y = simulate(1500, np.array([0.2, -0.6, 0.9]), 8)
    base = fit_logistic(x, y)
    perm = np.random.default_rng(0).permutation(1500)
    np.testing.assert_allclose(
        fit_logistic(x[perm], y[perm]).coef_, base.coef_, atol=1e-12
    )
    # Swapping chosen and rejected negates d and flips y: the same beta.
    np.testing.assert_allclose(fit_logistic(-x, 1 - y).coef_, base.coef_, atol=1e-12)


SCRIPT = """
import numpy as np
from rlhf_diag._core import fit_logistic
rng = np.random.default_rng(1)
x = np.column_stack([np.ones(30000), rng.normal(size=(30000, 3))])
y = (rng.random(30000) < 1 / (1 + np.exp(-x @ [0.1, 0.5, -1.0, 0.2]))).astype(float)
f = fit_logistic(x, y)
print(np.concatenate([f["coef"], f["se"], [f["nll"]]]).tobytes().hex())
"""


def test_thread_count_does_not_change_bits():
    def run(threads):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    assert run(1) == run(3)


# ------------------------------------------------------------------ errors


def test_errors_name_the_culprit():
    x, y = battles(8, 4)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match=r"x\[row 3, column 1\] = NaN"):
        fit_logistic(bad, y)
    with pytest.raises(InputError, match=r"y\[row 2\] = 1.5"):
        fit_logistic(x, np.where(np.arange(20) == 2, 1.5, y))
    with pytest.raises(InputError, match=r"w\[row 4\] = -1"):
        fit_logistic(x, y, weight=np.where(np.arange(20) == 4, -1.0, 1.0))
    with pytest.raises(InputError, match=r"y has shape \(19,\)"):
        fit_logistic(x, y[:-1])
    with pytest.raises(InputError, match="weight has shape"):
        fit_logistic(x, y, weight=np.ones(3))
    with pytest.raises(InputError, match="2-D"):
        fit_logistic(x[:, 0], y)
    with pytest.raises(InputError, match="numeric"):
        fit_logistic(x.astype(str), y)
    with pytest.raises(InputError, match="feature_names has 3"):
        fit_logistic(x, y, feature_names=["a", "b", "c"])
    with pytest.raises(InputError, match="unknown feature 'z'"):
        fit_logistic(x, y, l2=1.0, feature_names=["a", "b"], unpenalized=["z"])
    with pytest.raises(InputError, match="l2"):
        fit_logistic(x, y, l2=-1.0)
    with pytest.raises(InputError, match="max_iter"):
        fit_logistic(x, y, max_iter=0)
    with pytest.raises(InputError, match="sum to 0"):
        fit_logistic(x, y, weight=np.zeros(20))
    with pytest.raises(InputError):
        fit_logistic(np.zeros((0, 2)), np.zeros(0))


def test_collinear_features_are_a_fit_error(no_warnings):
    x, y = simulate(400, np.array([0.1, 0.5]), 4)
    x = np.column_stack([x, 3 * x[:, 1]])
    with pytest.raises(FitError, match="column 2"):
        fit_logistic(x, y)
    fit = fit_logistic(x, y, l2=0.5)
    # The ridge splits the shared effect between the copies as 1 : 3.
    assert fit.coef_[2] == pytest.approx(3 * fit.coef_[1], rel=1e-8)


def test_max_iter_warns_convergence():
    x, y = simulate(500, np.array([0.5, 2.0]), 6)
    with pytest.warns(ConvergenceWarning, match="after 1 iterations") as rec:
        fit = fit_logistic(x, y, max_iter=1)
    assert rec[0].filename == __file__
    assert fit.status == "max_iter" and not fit.converged_ and fit.coef_ is not None


# ---------------------------------------------------------- cross-validation


def test_kfold_deterministic_and_sane(no_warnings):
    beta = np.array([0.0, 2.0, -1.0])
    x, y = simulate(4000, beta, 21)
    a = cross_validate_logistic(x, y, k=5, random_state=7)
    b = cross_validate_logistic(x, y, k=5, random_state=7)
    c = cross_validate_logistic(x, y, k=5, random_state=8)
    assert a["accuracy"] == b["accuracy"] and a["fold_log_loss"] == b["fold_log_loss"]
    np.testing.assert_array_equal(a["fold_of_row"], b["fold_of_row"])
    assert not np.array_equal(a["fold_of_row"], c["fold_of_row"])
    assert sorted(a["fold_n"]) == [800] * 5
    # Bayes accuracy E[max(s, 1 - s)] under the true model, by Monte Carlo.
    z = np.random.default_rng(0).normal(size=(200_000, 2))
    s = expit(z @ beta[1:])
    bayes = np.mean(np.maximum(s, 1 - s))
    assert a["accuracy"] == pytest.approx(bayes, abs=0.03)
    # The held-out log-loss exceeds the true model's in-sample entropy only
    # slightly.
    entropy = -np.mean(s * np.log(s) + (1 - s) * np.log(1 - s))
    assert entropy < a["log_loss"] + 0.03 and a["log_loss"] < entropy + 0.05
    # Pooled values are weight-averaged fold values.
    pooled = np.dot(a["fold_accuracy"], a["fold_weight"]) / 4000
    assert a["accuracy"] == pytest.approx(pooled, rel=1e-12)


def test_kfold_by_hand_matches_fit_on_folds(no_warnings):
    x, y = simulate(600, np.array([0.3, -0.9]), 12)
    cv = cross_validate_logistic(x, y, k=3, random_state=1)
    fold = cv["fold_of_row"]
    for f in range(3):
        fit = fit_logistic(x[fold != f], y[fold != f])
        eta = x[fold == f] @ fit.coef_
        yt = y[fold == f]
        acc = np.mean(np.where(eta == 0, 0.5, (eta > 0) == (yt > 0.5)))
        loss = np.mean(np.logaddexp(0, eta) - yt * eta)
        assert cv["fold_accuracy"][f] == pytest.approx(acc, abs=1e-12)
        assert cv["fold_log_loss"][f] == pytest.approx(loss, rel=1e-9)


def test_kfold_refuses_separated_folds():
    x, y = battles(10, 0)
    with pytest.warns(SeparationWarning, match="folds"):
        cv = cross_validate_logistic(x, y, k=4, feature_names=["one", "d"])
    assert cv["accuracy"] is None and cv["log_loss"] is None
    assert "l2 > 0" in cv["refused_reason"]
    cv = cross_validate_logistic(x, y, k=4, l2=1.0)
    assert cv["accuracy"] == 1.0
    with pytest.raises(InputError, match="k = 21"):
        cross_validate_logistic(x, y, k=21, l2=1.0)


# ------------------------------------------- L-BFGS, L1, groups, calibration


def test_lbfgs_matches_newton_and_reads_float32():
    from rlhf_diag.logistic import fit_logistic as fl

    x, y = simulate(4000, [0.2, 1.0, -0.5, 0.3], 9)
    newton = fl(x, y, tol=1e-13)
    lb = fl(x, y, solver="lbfgs", tol=1e-11)
    assert (newton.solver, lb.solver) == ("newton", "lbfgs")
    np.testing.assert_allclose(lb.coef_, newton.coef_, atol=1e-7)
    np.testing.assert_allclose(lb.se_, newton.se_, rtol=1e-6)
    x32 = x.astype(np.float32)
    a = fl(x32, y, solver="lbfgs", tol=1e-11)
    b = fl(x32.astype(np.float64), y, solver="lbfgs", tol=1e-11)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_l1_gives_exact_zeros_and_no_standard_errors():
    from rlhf_diag.logistic import fit_logistic as fl

    x, y = simulate(3000, [0.0, 1.5, 0.0, 0.0, -1.0], 2)
    f = fl(x, y, l1=30.0, unpenalized=[0])
    assert f.solver == "lbfgs" and f.converged_
    assert f.coef_[2] == 0.0 and f.coef_[3] == 0.0
    assert f.coef_[1] > 1.0 and f.coef_[4] < -0.5
    assert f.se_ is None and "L1" in f.se_reason and "L1 (l1=30)" in f.penalty
    assert "standard errors" in f.summary()
    # Stationarity of the lasso: |gradient| <= l1 at the zeros.
    g = x.T @ (expit(x @ f.coef_) - y)
    assert np.all(np.abs(g[[2, 3]]) <= 30.0 + 1e-5)
    np.testing.assert_allclose(g[[1, 4]], -30.0 * np.sign(f.coef_[[1, 4]]), atol=1e-5)
    with pytest.raises(InputError, match="l1 > 0 needs"):
        fl(x, y, l1=1.0, solver="newton")
    with pytest.raises(InputError, match="solver"):
        fl(x, y, solver="sgd")


def test_groups_equal_separate_fits():
    from rlhf_diag.logistic import fit_logistic_groups

    x, y = simulate(600, [0.1, 0.8, -0.3], 12)
    shared = np.arange(500, 600)
    groups = [np.r_[np.arange(0, 250), shared], np.r_[np.arange(250, 500), shared]]
    fits = fit_logistic_groups(x, y, groups)
    for g, f in zip(groups, fits):
        ref = fit_logistic(x[g], y[g])
        np.testing.assert_allclose(f.coef_, ref.coef_, atol=1e-12)
        np.testing.assert_allclose(f.se_, ref.se_, atol=1e-12)
    with pytest.raises(InputError, match="row indices"):
        fit_logistic_groups(x, y, [np.array([0, 600])])


def test_two_way_matches_dense_fit():
    from rlhf_diag.logistic import fit_two_way

    rng = np.random.default_rng(4)
    n_g, n_i = 4, 12
    group = np.repeat(np.arange(n_g), n_i * 3)
    item = np.tile(np.repeat(np.arange(n_i), 3), n_g)
    t = rng.normal(size=group.size)
    y = expit(0.3 * group - 0.8 * t + rng.normal(size=n_i)[item])
    z = np.column_stack([np.ones_like(t), t])
    fit = fit_two_way(z, group, item, y, l2=0.3, tol=1e-12)
    dense = np.zeros((group.size, 2 * n_g + n_i))
    dense[np.arange(group.size), 2 * group] = 1.0
    dense[np.arange(group.size), 2 * group + 1] = t
    dense[np.arange(group.size), 2 * n_g + item] = 1.0
    ref = fit_logistic(dense, y, l2=0.3, unpenalized=list(range(2 * n_g)), tol=1e-13)
    np.testing.assert_allclose(fit.beta.ravel(), ref.coef_[: 2 * n_g], atol=1e-8)
    np.testing.assert_allclose(fit.effects, ref.coef_[2 * n_g :], atol=1e-8)
    assert fit.status == "converged"


def test_calibration_table_closed_form():
    from rlhf_diag.logistic import calibration_table

    t = calibration_table([0.05, 0.15, 0.12, 0.95], [0, 1, 0, 1], n_bins=10)
    assert [(b["low"], b["n"]) for b in t["bins"]] == [(0.0, 1), (0.1, 2), (0.9, 1)]
    assert t["bins"][1]["mean_predicted"] == pytest.approx(0.135)
    assert t["bins"][1]["mean_observed"] == pytest.approx(0.5)
    ece = (0.05 + 2 * abs(0.135 - 0.5) + 0.05) / 4
    assert t["ece"] == pytest.approx(ece)
    # Symmetric: rows with y = 1 at 0.7 also count as y = 0 at 0.3.
    s = calibration_table([0.7, 0.7], [1, 1], n_bins=5, symmetric=True)
    assert [(b["low"], b["mean_observed"]) for b in s["bins"]] == [
        (0.2, 0.0),
        (0.6, 1.0),
    ]
    assert s["ece"] == pytest.approx(0.3)


def test_cross_validation_calibration_and_held_out_probs():
    x, y = simulate(2000, [0.0, 1.2, -0.7], 6)
    cv = cross_validate_logistic(x, y, k=4, random_state=3)
    p = cv["held_out_prob"]
    ll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert ll == pytest.approx(cv["log_loss"], abs=1e-10)
    cal = cv["calibration"]
    assert sum(b["n"] for b in cal["bins"]) == 2000
    assert cal["ece"] < 0.05  # a correct model is calibrated
    lb = cross_validate_logistic(x, y, k=4, random_state=3, solver="lbfgs", tol=1e-11)
    assert lb["accuracy"] == pytest.approx(cv["accuracy"], abs=1e-3)


def test_float32_matrix_is_read_in_place_without_a_float64_copy():
    """A 2e6 x 32 float32 fit must not grow the peak RSS by anything near the
    512 MB a float64 copy of the matrix would take (measured in a fresh
    process, whose peak is taken right before and after the fit)."""
    import subprocess
    import sys

    code = """
import resource, warnings, numpy as np
from rlhf_diag.logistic import fit_logistic
rng = np.random.default_rng(0)
X = np.empty((2_000_000, 32), dtype=np.float32)
for i in range(0, 2_000_000, 100_000):  # no large temporaries before the fit
    X[i:i + 100_000] = rng.standard_normal((100_000, 32), dtype=np.float32)
y = (rng.random(2_000_000) < 0.5).astype(np.float64)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fit_logistic(X, y, tol=1e-6)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    growth_mib = float(out.stdout.strip())
    # A float64 copy is 488 MiB; the float32 matrix itself is 244 MiB.
    assert growth_mib < 150, f"peak grew by {growth_mib:.0f} MiB during the fit"
