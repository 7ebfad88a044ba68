"""The leaderboard's fast paths give the answers of the slow ones: the core's
one-pass scan of ``uint32``/``uint8`` arrays checks what numpy's reductions
check (same messages, same self-battle count); arrays with named models go
to the core unchecked and, when it refuses a row, through the checked path
(same messages, same warnings); ranks by sorting equal ranks by pairwise
comparison; and ``se=False`` changes no rating, only leaves out what needs the
Hessian's inverse."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from rlhf_diag import _core, simulate
from rlhf_diag.cli import main
from rlhf_diag.exceptions import DataQualityWarning, FitError, InputError
from rlhf_diag.leaderboard import _count_above, fit_battle_arrays, fit_leaderboard


def typed(a, b, o):
    return (
        np.asarray(a, dtype=np.uint32),
        np.asarray(b, dtype=np.uint32),
        np.asarray(o, dtype=np.uint8),
    )


def test_core_scan_equals_numpy():
    rng = np.random.default_rng(3)
    n = 700_001  # several tasks of the scan, the last one short
    a, b, o = typed(
        rng.integers(0, 50, n), rng.integers(0, 50, n), rng.integers(0, 3, n)
    )
    top_a, top_b, n_self, top_o = _core.bt_scan(a, b, o)
    assert (top_a, top_b, top_o) == (int(a.max()), int(b.max()), int(o.max()))
    assert n_self == int(np.count_nonzero(a == b)) > 0
    empty = typed([], [], [])
    assert _core.bt_scan(*empty) == (None, None, 0, None)


@pytest.mark.parametrize(
    "a, b, outcome, message",
    [
        ([0, 0, 1], [1, 3, 2], [0, 0, 0], r"model_b\[1\] = 3 is out of range: 3 models"),
        ([0, 5, 1], [1, 2, 2], [0, 0, 0], r"model_a\[1\] = 5 is out of range: 3 models"),
        ([0, 0, 1], [1, 2, 2], [0, 3, 0], r"outcome\[1\] = 3 is not 0"),
    ],
)
def test_scanned_arrays_are_refused_with_the_same_messages(a, b, outcome, message):
    for arrays in (typed(a, b, outcome), tuple(np.asarray(x) for x in (a, b, outcome))):
        with pytest.raises(InputError, match=message):
            fit_battle_arrays(*arrays, models=["p", "q", "r"])


def test_scanned_self_battles_are_dropped_and_counted_like_numpy():
    a, b, o = [0, 1, 2, 2, 0, 1, 1], [1, 2, 0, 2, 0, 0, 2], [0, 0, 0, 1, 2, 1, 2]
    fits = []
    for arrays in (typed(a, b, o), tuple(np.asarray(x, np.int64) for x in (a, b, o))):
        with pytest.warns(DataQualityWarning, match=r"dropped 2 self-battle.*rows \[3, 4\]"):
            fits.append(fit_battle_arrays(*arrays, scale="log"))
    assert fits[0].rows == fits[1].rows
    assert fits[0].n_battles == 5


def test_named_models_go_unchecked_and_self_battles_still_warn():
    """With ``models`` given the core sees the arrays first; it refuses the
    self-battles and the checked path drops them with the usual warning."""
    a, b, o = [0, 1, 2, 2, 0, 1, 1], [1, 2, 0, 2, 0, 0, 2], [0, 0, 0, 1, 2, 1, 2]
    names = ["x", "y", "z"]
    fits = []
    for arrays in (typed(a, b, o), tuple(np.asarray(x, np.int64) for x in (a, b, o))):
        with pytest.warns(DataQualityWarning, match=r"dropped 2 self-battle.*rows \[3, 4\]"):
            fits.append(fit_battle_arrays(*arrays, models=names, scale="log"))
    assert fits[0].rows == fits[1].rows and fits[0].n_battles == 5


@pytest.mark.parametrize(
    "a, b, options, error, part",
    [
        ([0, 1, 2, 3], [1, 0, 3, 2], {}, FitError, "{A, B}; {C, D}"),
        ([0, 1, 2, 3], [1, 2, 3, 0], {"anchor": ("Q", 1000.0)}, InputError, "'Q'"),
    ],
)
def test_named_models_other_errors_pass_through_unchanged(a, b, options, error, part):
    """A refusal that is not about the rows (a disconnected graph, an unknown
    anchor) is the same from the unchecked and the checked path."""
    o, names = [0, 0, 0, 0], ["A", "B", "C", "D"]
    messages = []
    for arrays in (typed(a, b, o), tuple(np.asarray(x, np.int64) for x in (a, b, o))):
        with pytest.raises(error) as err:
            fit_battle_arrays(*arrays, models=names, **options)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and part in messages[0]


def test_count_above_by_sorting_equals_pairwise_comparison():
    rng = np.random.default_rng(5)
    for t in range(100):
        k = int(rng.integers(1, 40))
        if t % 2:
            top = rng.choice([-np.inf, np.inf, np.nan, 0.5, 1.0, -1.0], k)
        else:
            top = rng.normal(size=k).round(1)
        bottom = top - rng.choice([0.0, 0.3, np.nan], k)
        comp, ok = rng.integers(0, 3, k), rng.random(k) < 0.7
        pairwise = [
            sum(ok[j] and comp[j] == comp[i] and top[j] > bottom[i] for j in range(k))
            for i in range(k)
        ]
        assert _count_above(top, bottom, comp, ok).tolist() == pairwise


def test_non_contiguous_arrays_take_the_numpy_path():
    a, b, o = typed([0, 9, 1, 9, 2, 9], [1, 9, 2, 9, 0, 9], [0, 1, 0, 1, 0, 1])
    lb = fit_battle_arrays(a[::2], b[::2], o[::2], scale="log")
    assert lb.n_battles == 3 and len(lb.models) == 3


@pytest.fixture(scope="module")
def battles():
    sim = simulate.simulate_battles(30, 20_000, tie_model="davidson", nu=0.5, seed=4)
    return sim.model_a, sim.model_b, sim.outcome


def test_without_se_ratings_are_unchanged_and_se_is_null(battles):
    full = fit_battle_arrays(*battles, scale="log")
    bare = fit_battle_arrays(*battles, scale="log", se=False)
    assert [r["theta"] for r in bare.rows] == [r["theta"] for r in full.rows]
    assert [r["rank"] for r in bare.rows] == [r["rank"] for r in full.rows]
    assert full.interval == "Wald (Hessian)" and bare.interval == "none"
    for r in bare.rows:
        assert r["se"] is None and r["ci_low"] is None and r["ci_high"] is None
        assert r["rank_ub"] is None and r["rank"] is not None
    assert "no intervals" in bare.summary()
    assert full.summary().splitlines()[-1].startswith("ub: rank upper bound")
    # The Wald interval of the full fit is theta -/+ 1.96 se (log scale).
    r = full.rows[0]
    assert r["ci_high"] - r["theta"] == pytest.approx(1.959964 * r["se"], rel=1e-6)
    d = bare.difference(full.rows[0]["model"], full.rows[1]["model"])
    assert d["se"] is None and "se=False" in d["se_reason"]
    assert d["difference"] == pytest.approx(full.rows[0]["theta"] - full.rows[1]["theta"])
    json.dumps(bare.to_dict(), allow_nan=False)


def test_covariance_from_the_factor(battles):
    """The core sends the covariance as a factor V (cov = V'V) and its
    diagonal; ``cov_`` is formed on first use. Reference: the inverse of the
    observed information of the constrained θ, the Hessian of the negative
    log-likelihood in the free coordinates θ_1..θ_{K-1} with θ_0 = 0
    (anchor), computed here by finite differences of the analytic gradient
    of the half-ties likelihood."""
    lb = fit_battle_arrays(*battles, scale="log", ties="half", anchor=("0", 0.0))
    assert lb._cov is None
    a, b, o = battles
    k = len(lb.models)
    ia = np.array([lb.models.index(str(x)) for x in range(k)])[a]
    ib = np.array([lb.models.index(str(x)) for x in range(k)])[b]
    s_a = np.where(o == 0, 1.0, np.where(o == 2, 0.5, 0.0))  # A's score

    def grad(free):
        th = np.concatenate([[0.0], free])
        p = 1 / (1 + np.exp(-(th[ia] - th[ib])))
        r = s_a - p
        g = np.bincount(ia, -r, k) + np.bincount(ib, r, k)
        return g[1:]

    i0 = lb.models.index("0")
    assert i0 == 0 and lb.theta_[0] == 0.0
    free = lb.theta_[1:]
    h = np.empty((k - 1, k - 1))
    for j in range(k - 1):
        e = np.zeros(k - 1)
        e[j] = 1e-6
        h[:, j] = (grad(free + e) - grad(free - e)) / 2e-6
    ref = np.zeros((k, k))
    ref[1:, 1:] = np.linalg.inv((h + h.T) / 2)
    se = np.array([r["se"] for r in sorted(lb.rows, key=lambda r: lb.models.index(r["model"]))])
    np.testing.assert_allclose(se, np.sqrt(np.diag(ref)), rtol=1e-5, atol=1e-12)
    m1, m2 = lb.models[3], lb.models[7]
    d = lb.difference(m1, m2)["se"]
    assert lb._cov is None  # a difference needs no K x K matrix
    assert d == pytest.approx(math.sqrt(ref[3, 3] + ref[7, 7] - 2 * ref[3, 7]), rel=1e-5)
    np.testing.assert_allclose(lb.cov_, ref, rtol=1e-5, atol=1e-9)


def test_without_se_the_bootstrap_still_gives_intervals(battles):
    full = fit_battle_arrays(*battles, scale="log", bootstrap=50, seed=7)
    bare = fit_battle_arrays(*battles, scale="log", bootstrap=50, seed=7, se=False)
    assert bare.interval == "bootstrap percentile"
    for f, r in zip(full.rows, bare.rows):
        assert (r["ci_low"], r["ci_high"], r["rank_ub"]) == (
            f["ci_low"],
            f["ci_high"],
            f["rank_ub"],
        )
        assert r["se"] is None and math.isfinite(f["se"])


def test_cli_no_se(tmp_path, capsys):
    path = tmp_path / "b.csv"
    path.write_text(
        "model_a,model_b,winner\n"
        + "x,y,model_a\n" * 3
        + "y,z,model_a\n" * 2
        + "z,x,model_a\nx,y,model_b\ny,z,tie\n"
    )
    out = tmp_path / "lb.json"
    assert main(["leaderboard", str(path), "--bootstrap", "0", "--no-se", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["interval"] == "none"
    assert all(m["se"] is None and m["rank_ub"] is None for m in got["models"])
    assert main(["leaderboard", str(path), "--no-se", "--style-cols", "x"]) == 2
    assert "--no-se applies to the plain fit" in capsys.readouterr().err


def test_fit_leaderboard_passes_se(tmp_path):
    path = tmp_path / "b.jsonl"
    rows = [("x", "y", "model_a")] * 3 + [("y", "x", "model_a"), ("x", "y", "tie")]
    path.write_text(
        "".join(
            json.dumps({"model_a": a, "model_b": b, "winner": w}) + "\n"
            for a, b, w in rows
        )
    )
    lb = fit_leaderboard(path, se=False, scale="log")
    assert [r["se"] for r in lb.rows] == [None, None]
    # Half ties: x scores 3.5 of 5 against y.
    assert lb.rows[0]["theta"] - lb.rows[1]["theta"] == pytest.approx(math.log(3.5 / 1.5))
