"""Style control by the battle-by-battle Newton (no dense design)."""

import warnings

import numpy as np
import polars as pl
import pytest

import rlhf_diag.leaderboard as lbm
from rlhf_diag import _core
from rlhf_diag.exceptions import FitError, InputError, SeparationWarning
from rlhf_diag.leaderboard import fit_style_controlled

A, B, T = "model_a", "model_b", "tie"


def simulate(k, n, p, seed, *, ties=0.0, weights=False, gamma=None):
    """Battles with known theta and gamma; z standard normal."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.8, k)
    gamma = np.linspace(0.6, -0.3, p) if gamma is None else np.asarray(gamma)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    z = rng.normal(size=(n, p))
    prob = 1 / (1 + np.exp(-(theta[a] - theta[b] + z @ gamma)))
    u = rng.random(n)
    win = np.where(rng.random(n) < prob, A, B)
    win = np.where(u < ties, T, win)
    names = np.array([f"m{i:03d}" for i in range(k)])
    cols = {"model_a": names[a], "model_b": names[b], "winner": win}
    cols.update({f"z{j}": z[:, j] for j in range(p)})
    if weights:
        cols["w"] = rng.uniform(0.5, 2.0, n)
    return pl.DataFrame(cols), theta, gamma


def both(frame, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense = fit_style_controlled(frame, _engine="dense", **kw)
        sparse = fit_style_controlled(frame, _engine="sparse", **kw)
    return dense, sparse


@pytest.mark.parametrize(
    "ties, weights, alpha, anchor",
    [
        ("half", True, 0.0, None),
        ("half", True, 2.0, None),
        ("drop", False, 0.5, "m003"),
    ],
)
def test_sparse_equals_dense(ties, weights, alpha, anchor):
    frame, _, _ = simulate(20, 20_000, 3, seed=1, ties=0.15, weights=weights)
    kw = dict(
        style=["z0", "z1", "z2"],
        ties=ties,
        alpha=alpha,
        weight="w" if weights else None,
        anchor=None if anchor is None else (anchor, 0.0),
        scale="log",
    )
    dense, sparse = both(frame, **kw)
    assert sparse.models == dense.models
    np.testing.assert_allclose(sparse.theta_, dense.theta_, atol=1e-8, rtol=0)
    np.testing.assert_allclose(sparse.cov_, dense.cov_, atol=1e-8, rtol=0)
    for s, d in zip(sparse.style, dense.style):
        assert s["feature"] == d["feature"]
        for key in ("coef", "se", "ci_low", "ci_high"):
            assert s[key] == pytest.approx(d[key], abs=1e-8)
    for rs, rd in zip(sparse.rows, dense.rows):
        assert (rs["model"], rs["n_battles"], rs["rank"], rs["status"]) == (
            rd["model"],
            rd["n_battles"],
            rd["rank"],
            rd["status"],
        )
        assert rs["se"] == pytest.approx(rd["se"], abs=1e-8)


def style_battles() -> pl.DataFrame:
    """Issue 3: A vs B, 20 battles, d = sign(len_a - len_b); A longer in the
    first ten (A wins 8), B longer in the last ten (A wins 4)."""
    win = [A] * 8 + [B] * 2 + [A] * 4 + [B] * 6
    return pl.DataFrame(
        {
            "model_a": ["A"] * 20,
            "model_b": ["B"] * 20,
            "winner": win,
            "d": [1.0] * 10 + [-1.0] * 10,
        }
    )


def test_published_answer_through_sparse_path():
    lb = fit_style_controlled(
        style_battles(), style=["d"], scale="log", _engine="sparse"
    )
    # theta + gamma = logit 0.8, theta - gamma = logit 0.4.
    assert lb.difference("A", "B")["difference"] == pytest.approx(0.490415, abs=1e-6)
    (gamma,) = lb.style
    assert gamma["feature"] == "d"
    assert gamma["coef"] == pytest.approx(0.895880, abs=1e-6)
    # Var(theta + gamma) = 1 / (10 * 0.8 * 0.2) and Var(theta - gamma) =
    # 1 / (10 * 0.4 * 0.6), so Var(gamma) = (1/1.6 + 1/2.4) / 4.
    assert gamma["se"] == pytest.approx(np.sqrt((1 / 1.6 + 1 / 2.4) / 4), rel=1e-9)


def test_auto_switches_to_sparse_above_the_cell_limit(monkeypatch):
    calls = []
    real = lbm._style_sparse_fit

    def spy(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(lbm, "_style_sparse_fit", spy)
    fit_style_controlled(style_battles(), style=["d"], scale="log")
    assert calls == []
    monkeypatch.setattr(lbm, "_STYLE_MAX_CELLS", 10)
    lb = fit_style_controlled(style_battles(), style=["d"], scale="log")
    assert calls == [1]
    assert lb.style[0]["coef"] == pytest.approx(0.895880, abs=1e-6)


def test_sparse_separation_is_refused_with_the_feature_named():
    # The longer answer (d = +1) always wins.
    frame = pl.DataFrame(
        {
            "model_a": ["A", "B", "C"] * 10,
            "model_b": ["B", "C", "A"] * 10,
            "winner": [A, B] * 15,
            "d": [1.0, -1.0] * 15,
        }
    )
    with pytest.warns(SeparationWarning, match="no finite estimate for d"):
        lb = fit_style_controlled(frame, style=["d"], _engine="sparse")
    assert lb.style[0]["coef"] is None
    assert all(r["status"] != "ok" for r in lb.rows)


def test_core_rejects_bad_index_naming_the_battle():
    a = np.array([0, 1, 5], np.uint32)
    b = np.array([1, 0, 1], np.uint32)
    z = np.zeros((3, 1))
    y = np.array([1.0, 0.0, 0.5])
    w = np.ones(3)
    with pytest.raises(InputError, match="battle 2"):
        _core.bt_style_newton(a, b, z, y, w, 2, 0, 0.0, 1e-10, 50)
    with pytest.raises(InputError, match="length of y"):
        _core.bt_style_newton(a[:2], b[:2], z[:2], y, w[:2], 2, 0, 0.0, 1e-10, 50)


@pytest.mark.slow
def test_known_truth_k200_n1e6_recovers_gamma():
    frame, theta, gamma = simulate(200, 1_000_000, 2, seed=7, gamma=[0.4, -0.25])
    # 1e6 x 201 cells: above the dense limit, so the default path is sparse.
    assert 1_000_000 * 201 > lbm._STYLE_MAX_CELLS
    lb = fit_style_controlled(frame, style=["z0", "z1"], scale="log")
    for row, g in zip(lb.style, gamma):
        assert abs(row["coef"] - g) < 3 * row["se"], (row, g)
        assert 0.001 < row["se"] < 0.01
    # Ratings centred over the models, against the centred truth.
    truth = theta - theta.mean()
    est = np.array([lb.theta_[lb.models.index(f"m{i:03d}")] for i in range(200)])
    se = np.sqrt(np.diag(lb.cov_))[[lb.models.index(f"m{i:03d}") for i in range(200)]]
    zscores = (est - truth) / se
    assert np.mean(np.abs(zscores) < 1.96) > 0.9


def test_sparse_names_a_model_left_without_information():
    # C plays only ties, which ties="drop" removes: no information on it.
    rows = [
        ("A", "B", A, 1.0),
        ("B", "A", A, -1.0),
        ("A", "B", B, 0.5),
        ("B", "A", B, 0.2),
        ("A", "C", T, 0.3),
        ("C", "B", T, -0.4),
        ("A", "B", A, -0.3),
        ("B", "A", B, 0.1),
    ]
    frame = pl.DataFrame(
        {
            "model_a": [r[0] for r in rows],
            "model_b": [r[1] for r in rows],
            "winner": [r[2] for r in rows],
            "d": [r[3] for r in rows],
        }
    )
    with pytest.raises(FitError, match="no information on model 'C'"):
        fit_style_controlled(frame, style=["d"], ties="drop", _engine="sparse")
    # With the prior C is pulled to the others' mean and the fit is finite.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lb = fit_style_controlled(
            frame, style=["d"], ties="drop", alpha=1.0, _engine="sparse"
        )
    assert np.isfinite(lb.theta_).all()
