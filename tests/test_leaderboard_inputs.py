"""Leaderboard defects found by a new user's trial: the separation warning
names the group that is fitted and the models at fault; models with no
finite estimate are ranked by the orders the data do fix; constant style
features are left out; weights and index arrays are checked; separate
components are labelled; the CLI names its own options; every accepted
winner label is listed."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from rlhf_diag.cli import main
from rlhf_diag.exceptions import DataQualityWarning, InputError, SeparationWarning
from rlhf_diag.leaderboard import (
    ELO_FACTOR,
    fit_battle_arrays,
    fit_leaderboard,
    fit_style_controlled,
    style_covariates,
)

A, B, T = "model_a", "model_b", "tie"


def frame(spec, **extra):
    """Battles from ``(x, y, x_wins, y_wins)``: x on side a every time."""
    rows = []
    for x, y, wx, wy in spec:
        rows += [(x, y, A)] * wx + [(x, y, B)] * wy
    cols = {
        "model_a": [r[0] for r in rows],
        "model_b": [r[1] for r in rows],
        "winner": [r[2] for r in rows],
    }
    cols.update(extra)
    return pl.DataFrame(cols)


def by_model(lb):
    return {r["model"]: r for r in lb.rows}


def no_nan(lb):
    json.dumps(lb.to_dict(), allow_nan=False)
    for r in lb.rows:
        for v in r.values():
            assert not (isinstance(v, float) and not math.isfinite(v)), r


def separation_text(rec):
    msgs = [str(w.message) for w in rec if w.category is SeparationWarning]
    assert len(msgs) == 1, msgs
    return msgs[0]


# ------------------------------------------- 1. the warning names the group
# X, Y, Z beat one another in a cycle, so do P and Q, and the first group
# beats the second every time: nobody never wins or never loses, yet there is
# no finite MLE. The old warning named P, Q as "the largest fully connected
# group" although X, Y, Z is the group fitted.
TWO_TIERS = [
    ("X", "Y", 2, 1),
    ("Y", "Z", 2, 1),
    ("Z", "X", 2, 1),
    ("P", "Q", 2, 1),
    ("X", "P", 3, 0),
    ("Y", "Q", 3, 0),
]


def test_separation_warning_names_the_fitted_group_and_the_models_at_fault():
    with pytest.warns(SeparationWarning) as rec:
        lb = fit_leaderboard(frame(TWO_TIERS))
    msg = separation_text(rec)
    assert "no finite maximum-likelihood rating for 2 of 5 models" in msg
    assert "one another, directly or through others: {X, Y, Z}" in msg
    assert "below it (-inf): P, Q." in msg
    assert "never win" not in msg and "never lose" not in msg
    rows = by_model(lb)
    assert [rows[m]["status"] for m in "XYZPQ"] == ["ok"] * 3 + ["-inf"] * 2
    # The cycle is balanced: the fitted three are equal.
    assert [rows[m]["rating"] for m in "XYZ"] == pytest.approx([1000.0] * 3, abs=1e-9)


def test_separation_under_a_prior_is_still_reported():
    # Before, alpha > 0 only warned when some model never won or never lost.
    with pytest.warns(SeparationWarning) as rec:
        lb = fit_leaderboard(frame(TWO_TIERS), alpha=0.5)
    msg = separation_text(rec)
    assert "Without the prior, the largest group" in msg
    assert "{X, Y, Z}; below it (-inf): P, Q." in msg
    assert "L2 prior alpha = 0.5" in msg
    assert all(r["status"] == "ok" for r in lb.rows)


def test_separation_names_never_win_and_never_lose_exactly():
    # 0 beats 1 and 2, 1 beats 2: 0 never loses, 2 never wins, and 1 does
    # both (it is in neither list).
    spec = [("a0", "a1", 2, 0), ("a0", "a2", 1, 0), ("a1", "a2", 1, 0)]
    with pytest.warns(SeparationWarning) as rec:
        fit_leaderboard(frame(spec))
    msg = separation_text(rec)
    assert "(never win: a2; never lose: a0)" in msg
    assert "through others: {a0}; reported below it (-inf): a1, a2." in msg


def test_strongly_connected_data_give_no_separation_warning():
    import warnings

    spec = [("x", "y", 2, 1), ("y", "z", 2, 1), ("z", "x", 2, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeparationWarning)
        fit_leaderboard(frame(spec), alpha=0.5)
        fit_leaderboard(frame(spec))


# ------------------------------------------- 2. known orders are ranked
# A beats B always, B beats C always, C beats D always, and D, E, F beat one
# another evenly (the fitted group, all three equal).
CHAIN_ABOVE = [
    ("A", "B", 1, 0),
    ("B", "C", 1, 0),
    ("C", "D", 1, 0),
    ("D", "E", 2, 2),
    ("E", "F", 2, 2),
]


def test_models_at_plus_inf_are_ranked_by_their_known_order():
    with pytest.warns(SeparationWarning, match=r"above it \(\+inf\): A, B, C"):
        lb = fit_leaderboard(frame(CHAIN_ABOVE), bootstrap=0)
    rows = by_model(lb)
    assert [rows[m]["rank"] for m in "ABCDEF"] == [1, 2, 3, 4, 4, 4]
    # The three +inf models lie wholly above each fitted model; the fitted
    # three overlap, so their upper bound is 4.
    assert [rows[m]["rank_ub"] for m in "ABCDEF"] == [1, 2, 3, 4, 4, 4]
    assert [r["model"] for r in lb.rows][:3] == ["A", "B", "C"]
    no_nan(lb)


def test_models_at_minus_inf_and_undefined_are_ranked_by_known_order():
    # {X, Y} fitted (X beats Y 3-1); X beats P, P beats Q; U beats Q only
    # (U is not ordered against the fitted group, but is known above Q).
    spec = [
        ("X", "Y", 3, 1),
        ("X", "P", 1, 0),
        ("P", "Q", 1, 0),
        ("U", "Q", 1, 0),
    ]
    with pytest.warns(SeparationWarning) as rec:
        lb = fit_leaderboard(frame(spec), scale="log", bootstrap=0)
    msg = separation_text(rec)
    assert "{X, Y}" in msg and "below it (-inf): P, Q" in msg
    assert "not ordered against it (undefined): U" in msg
    rows = by_model(lb)
    assert rows["X"]["theta"] - rows["Y"]["theta"] == pytest.approx(math.log(3))
    assert [rows[m]["rank"] for m in "XYPQ"] == [1, 2, 3, 5]  # U is above Q
    assert rows["U"]["rank"] is None and rows["U"]["rank_ub"] is None
    assert rows["Q"]["rank_ub"] == 5 and rows["P"]["rank_ub"] == 3
    no_nan(lb)


def test_known_orders_with_bootstrap_have_no_nan():
    with pytest.warns(SeparationWarning):
        lb = fit_leaderboard(frame(CHAIN_ABOVE), bootstrap=200, seed=1)
    rows = by_model(lb)
    assert [rows[m]["rank"] for m in "ABC"] == [1, 2, 3]
    # Outside the fitted group the bound is the known order itself.
    assert [rows[m]["rank_ub"] for m in "ABC"] == [1, 2, 3]
    assert all(rows[m]["rank_ub"] <= rows[m]["rank"] for m in "DEF")
    assert all(rows[m]["rank_ub"] >= 4 for m in "DEF")
    no_nan(lb)


def _reference_known_above(k, arcs):
    """Slow reference: reachability by Floyd-Warshall over models; j is known
    above i when j reaches i and i does not reach j."""
    reach = [[i == j for j in range(k)] for i in range(k)]
    for u, v in arcs:
        reach[u][v] = True
    for m in range(k):
        for i in range(k):
            if reach[i][m]:
                for j in range(k):
                    if reach[m][j]:
                        reach[i][j] = True
    return [
        [reach[j][i] and not reach[i][j] for j in range(k)] for i in range(k)
    ], reach


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("exact", [True, False])
def test_ranks_respect_every_known_order(seed, exact, monkeypatch):
    import rlhf_diag.leaderboard as lbm

    if not exact:  # the level-based count used for very many blocks
        monkeypatch.setattr(lbm, "_MAX_ORDER_BLOCKS", 0)
    rng = np.random.default_rng(seed)
    k = 9
    names = [f"m{i}" for i in range(k)]
    # A cycle over the first four (the fitted group), then random one-way wins.
    a = [0, 1, 2, 3, 1, 2]
    b = [1, 2, 3, 0, 0, 1]
    o = [0, 0, 0, 0, 0, 0]
    for _ in range(14):
        i, j = rng.choice(k, 2, replace=False)
        a.append(int(i))
        b.append(int(j))
        o.append(int(rng.integers(0, 2)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            lb = fit_battle_arrays(a, b, o, models=names, scale="log")
        except lbm.FitError:
            pytest.skip("disconnected draw")
    arcs = [(x, y) if r == 0 else (y, x) for x, y, r in zip(a, b, o)]
    above, _ = _reference_known_above(k, arcs)
    rows = by_model(lb)
    for i in range(k):
        for j in range(k):
            ri, rj = rows[names[i]]["rank"], rows[names[j]]["rank"]
            if above[i][j] and ri is not None and rj is not None:
                assert rj < ri, (names[j], "above", names[i])
    if exact:
        for i in range(k):
            r = rows[names[i]]
            if r["status"] in ("+inf", "-inf"):
                assert r["rank"] == 1 + sum(above[i])
                assert r["rank_ub"] == r["rank"]
    no_nan(lb)


# ------------------------------------------- 3. constant style features
def test_constant_style_column_is_dropped_and_named():
    # The exact case (theta = 0.490415, gamma = 0.895880) with a
    # column that never varies added: it is left out, not a singular Hessian.
    n = 20
    d = [1] * 10 + [-1] * 10
    winners = [A] * 8 + [B] * 2 + [A] * 4 + [B] * 6
    df = pl.DataFrame(
        {"model_a": ["A"] * n, "model_b": ["B"] * n, "winner": winners, "d": d}
    ).with_columns(k=pl.lit(3.0), z=pl.lit(0.0))
    with pytest.warns(DataQualityWarning, match="never vary over the battles: k, z"):
        lb = fit_style_controlled(df, style=["d", "k", "z"], scale="log")
    assert [s["feature"] for s in lb.style] == ["d"]
    assert lb.style[0]["coef"] == pytest.approx(0.895880, abs=1e-6)
    th = {r["model"]: r["theta"] for r in lb.rows}
    assert th["A"] - th["B"] == pytest.approx(0.490415, abs=1e-6)
    assert lb.style_dropped == ["k", "z"]
    assert lb.to_dict()["style_dropped_no_variation"] == ["k", "z"]
    assert "style left out (never varies): k, z" in lb.summary()


def test_style_text_without_markdown_drops_the_markdown_features():
    rng = np.random.default_rng(3)
    n = 90
    ma = rng.choice(["A", "B", "C"], n)
    mb = np.array([{"A": "B", "B": "C", "C": "A"}[x] for x in ma])
    ta = ["word " * int(x) for x in rng.integers(1, 40, n)]
    tb = ["word " * int(x) for x in rng.integers(1, 40, n)]
    win = rng.choice([A, B], n)
    df = pl.DataFrame({"model_a": ma, "model_b": mb, "winner": win, "ta": ta, "tb": tb})
    with pytest.warns(DataQualityWarning) as rec:
        lb = fit_style_controlled(df, style_text=("ta", "tb"), scale="log")
    dropped = ["style_headers", "style_unordered_items", "style_ordered_items", "style_bold"]
    assert lb.style_dropped == dropped
    assert any(", ".join(dropped) in str(w.message) for w in rec)
    # Same answer as fitting the one varying covariate given as a column.
    chars = style_covariates(df["ta"], df["tb"])["style_chars"]
    ref = fit_style_controlled(df.with_columns(c=chars), style=["c"], scale="log")
    assert lb.style[0]["coef"] == pytest.approx(ref.style[0]["coef"], abs=1e-10)
    assert lb.style[0]["se"] == pytest.approx(ref.style[0]["se"], abs=1e-10)


# ------------------------------------------- 4. weights
def test_all_zero_weights_are_an_error_not_a_disconnected_graph():
    df = frame([("x", "y", 2, 1)], w=[0.0, 0.0, 0.0])
    with pytest.raises(InputError, match="all 3 weights in column 'w' are zero"):
        fit_leaderboard(df, weight="w")
    with pytest.raises(InputError, match="all 3 weights are zero"):
        fit_battle_arrays([0, 0, 0], [1, 1, 1], [0, 0, 1], weight=np.zeros(3))


def test_zero_weight_rows_are_dropped_and_counted():
    df = frame([("x", "y", 3, 1), ("x", "z", 1, 0)], w=[1.0, 0.0, 1, 1, 0.0])
    with pytest.warns(DataQualityWarning) as rec:
        lb = fit_leaderboard(df, weight="w", scale="log", bootstrap=0)
    text = " ".join(str(w.message) for w in rec)
    assert "dropped 2 battle(s) of weight 0, first at rows [1, 4]" in text
    assert "left with no battles, not rated: z" in text
    th = {r["model"]: r["theta"] for r in lb.rows}
    assert lb.models == ["x", "y"] and lb.n_battles == 3
    assert th["x"] - th["y"] == pytest.approx(math.log(2), abs=1e-10)  # 2 : 1


@pytest.mark.parametrize("bad", [-2.0, float("nan"), float("inf")])
def test_bad_weights_name_the_row_and_value(bad):
    df = frame([("x", "y", 2, 1)], w=[1.0, bad, 1.0])
    with pytest.raises(InputError, match=r"rows \[1\].*row 1 holds"):
        fit_leaderboard(df, weight="w")
    with pytest.raises(InputError, match=r"weight\[1\] = "):
        fit_battle_arrays([0, 0, 0], [1, 1, 1], [0, 1, 0], weight=[1.0, bad, 1.0])


@pytest.mark.parametrize("c", [1e-200, 1e-30, 1e30, 1e300])
def test_extreme_weights_give_the_unit_weight_answer(c):
    a, b, o = [0, 0, 0, 0, 1, 2], [1, 1, 1, 1, 2, 0], [0, 0, 0, 1, 0, 0]
    unit = fit_battle_arrays(a, b, o, scale="log", ties="davidson")
    scaled = fit_battle_arrays(a, b, o, weight=np.full(6, c), scale="log")
    base = fit_battle_arrays(a, b, o, scale="log")
    for r, s in zip(base.rows, scaled.rows):
        assert s["theta"] == pytest.approx(r["theta"], abs=1e-10)
        # Frequency weights: c times the information, se / sqrt(c).
        assert s["se"] == pytest.approx(r["se"] / math.sqrt(c), rel=1e-9)
        assert s["wins"] == pytest.approx(r["wins"] * c, rel=1e-12)
    assert unit.rows  # the Davidson fit of the same data also runs


@pytest.mark.parametrize("c", [3.0, 1e24, 1e-24])
def test_weights_and_prior_scale_together(c):
    # alpha/2 |theta|^2 + sum w l  is  c (alpha/(2c) |theta|^2 + sum (w/c) l):
    # scaling weights and prior by one factor keeps the optimum, and the
    # covariance shrinks by that factor. c = 3 is fitted as given, 1e24 and
    # 1e-24 divided by a power of 4 first.
    a, b, o = [0, 0, 1, 2, 2], [1, 2, 2, 0, 1], [0, 0, 0, 1, 0]
    ref = fit_battle_arrays(a, b, o, weight=np.full(5, 1.0), alpha=0.7, scale="log")
    big = fit_battle_arrays(a, b, o, weight=np.full(5, c), alpha=0.7 * c, scale="log")
    for r, s in zip(ref.rows, big.rows):
        assert s["theta"] == pytest.approx(r["theta"], abs=1e-12)
        assert s["se"] == pytest.approx(r["se"] / math.sqrt(c), rel=1e-9)
    assert ref.rows[0]["theta"] > 0.1  # the prior does not flatten the answer


def test_weights_summing_past_the_largest_float_are_refused():
    with pytest.raises(InputError, match=r"sum past the largest float \(1.798e\+308\)"):
        fit_battle_arrays([0, 1], [1, 0], [0, 0], weight=[1e308, 1e308])


# ------------------------------------------- 5. index arrays
@pytest.mark.parametrize(
    "a, b, outcome, message",
    [
        ([0, 0, 1.7], [1, 2, 2], [0, 0, 0], r"model_a\[2\] = 1.7 is not an integer"),
        ([0, 0, 1], [1, -1, 2], [0, 0, 0], r"model_b\[1\] = -1 is a negative"),
        ([0, 0, 1], [1, 3, 2], [0, 0, 0], r"model_b\[1\] = 3 is out of range: 3 models"),
        ([0, 0, 1], [1, 2, 2], [0, 3, 0], r"outcome\[1\] = 3 is not 0"),
        ([0, 0, 1], [1, 2, 2], [0, 0.5, 0], r"outcome\[1\] = 0.5 is not 0"),
        ([0, 0, 1], [1, 2, 2], [-1, 0, 0], r"outcome\[0\] = -1 is not 0"),
        ([0, 0, 1], [1, 2], [0, 0, 0], "differ in length: model_a 3, model_b 2"),
        ([True, False], [1, 0], [0, 0], "model_a: expected numbers"),
    ],
)
def test_index_arrays_are_checked(a, b, outcome, message):
    with pytest.raises(InputError, match=message):
        fit_battle_arrays(
            np.asarray(a), np.asarray(b), np.asarray(outcome), models=["p", "q", "r"]
        )


def test_integral_float_indices_are_accepted():
    a, b, o = [0, 1, 2, 0], [1, 2, 0, 2], [0, 0, 0, 1]
    ints = fit_battle_arrays(np.array(a), np.array(b), np.array(o), scale="log")
    floats = fit_battle_arrays(
        np.array(a, float), np.array(b, float), np.array(o, float), scale="log"
    )
    assert [r["theta"] for r in floats.rows] == [r["theta"] for r in ints.rows]


def test_model_without_battles_is_named_not_rated():
    with pytest.warns(DataQualityWarning, match="1 model.*no battles.*: idle"):
        lb = fit_battle_arrays(
            [0, 0, 1], [1, 1, 0], [0, 0, 0], models=["x", "y", "idle"], scale="log"
        )
    rows = by_model(lb)
    assert rows["idle"]["status"] == "undefined" and rows["idle"]["rank"] is None
    assert rows["x"]["theta"] - rows["y"]["theta"] == pytest.approx(math.log(2))
    no_nan(lb)


# ------------------------------------------- 6. component column
def test_separate_components_are_labelled(tmp_path, capsys):
    spec = [("A", "B", 5, 3), ("C", "D", 4, 2)]
    with pytest.warns(DataQualityWarning, match="2 components"):
        lb = fit_leaderboard(frame(spec), components="separate", bootstrap=0)
    df = lb.to_polars()
    assert df.select("model", "component").rows() == [
        ("A", 0),
        ("B", 0),
        ("C", 1),
        ("D", 1),
    ]
    assert df["rank"].to_list() == [1, 2, 1, 2]
    d = lb.difference("C", "D")["difference"]
    assert d == pytest.approx(ELO_FACTOR * math.log(2), abs=1e-9)  # 120.41
    assert lb.summary().splitlines()[2].split()[:3] == ["comp", "rank", "ub"]
    path = tmp_path / "s.csv"
    frame(spec).write_csv(path)
    out = tmp_path / "s.json"
    code = main(
        ["leaderboard", str(path), "--components", "separate", "--bootstrap", "0",
         "--json", str(out)]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "component" in table
    assert [m["component"] for m in json.loads(out.read_text())["models"]] == [0, 0, 1, 1]


# ------------------------------------------- 7. the CLI names its options
@pytest.mark.parametrize(
    "args, expected",
    [
        (["--alpha", "-1"], "--alpha -1.0: expected a finite number >= 0"),
        (["--level", "1.5"], "--level 1.5: expected a number in (0, 1)"),
        (["--bootstrap", "-3"], "--bootstrap -3: expected a number of rounds >= 0"),
        (["--threads", "0"], "--threads 0: expected a number of threads >= 1"),
        (["--anchor", "nobody=1"], "--anchor: model 'nobody' is not among the models"),
        (["--model-a-col", "left"], "--model-a-col / --model-b-col"),
        (["--winner-col", "nope"], "missing winner column 'nope' (--winner-col)"),
        (["--weight-col", "nope"], "missing weight column 'nope' (--weight-col)"),
        (["--label", "x=nonsense"], "(--label RAW=model_a|model_b|tie)"),
        (["--style-cols", "nope"], "missing style column(s) ['nope'] (--style-cols)"),
        (["--style-text", "p,q"], "missing text column(s) ['p', 'q'] (--style-text)"),
    ],
)
def test_cli_errors_name_cli_options(tmp_path, capsys, args, expected):
    path = tmp_path / "b.csv"
    frame([("x", "y", 2, 1), ("y", "z", 1, 1)]).write_csv(path)
    assert main(["leaderboard", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert expected in err
    for py_name in ("labels=", "model_a=", "alpha =", "level =", "n_jobs", "style="):
        assert py_name not in err


def test_cli_names_its_options_in_the_disconnected_error_and_warning(tmp_path, capsys):
    path = tmp_path / "b.csv"
    frame([("x", "y", 2, 1), ("p", "q", 1, 1)]).write_csv(path)
    assert main(["leaderboard", str(path), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert "pass --components separate to fit each alone" in err
    assert "components='separate'" not in err
    frame([("x", "y", 2, 0)]).write_csv(path)
    assert main(["leaderboard", str(path), "--bootstrap", "0"]) == 0
    assert "Pass --alpha > 0" in capsys.readouterr().err
    # Outside the CLI the Python names come back.
    with pytest.raises(InputError, match="alpha = -1"):
        fit_leaderboard(frame([("x", "y", 2, 1)]), alpha=-1)


# ------------------------------------------- 8. every accepted label listed
def test_unknown_label_lists_every_accepted_label():
    df = pl.DataFrame({"model_a": ["x", "y"], "model_b": ["y", "x"], "winner": ["A", "??"]})
    with pytest.raises(InputError) as err:
        fit_leaderboard(df, labels={"first": "model_a"})
    msg = str(err.value)
    assert "'??' (rows [1])" in msg
    assert (
        "model_a, a, left, first (side a wins); model_b, b, right (side b wins); "
        "tie, draw, tie (bothbad) (a tie)"
    ) in msg


def test_anchor_on_a_model_without_finite_estimate_names_it(tmp_path, capsys):
    spec = [("A", "B", 1, 1), ("A", "C", 1, 0), ("B", "C", 1, 0)]
    with pytest.raises(InputError, match=r"anchor = \('C', 1000\.0\)|anchor: 'C' has no"):
        fit_leaderboard(frame(spec), anchor=("C", 1000.0))
    path = tmp_path / "b.csv"
    frame(spec).write_csv(path)
    assert main(["leaderboard", str(path), "--anchor", "C=1000", "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert "--anchor: 'C' has no finite estimate (-inf" in err
    assert "MinusInf" not in err and "index" not in err
