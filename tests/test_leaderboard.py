"""The leaderboard API and CLI: input normalisation, the LLMFAO golden scores
(evalica), the Arena-Hard battles, the result object's views and the
``rlhf-diag leaderboard`` command."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from rlhf_diag.cli import main
from rlhf_diag.exceptions import DataQualityWarning, InputError, SeparationWarning
from rlhf_diag.leaderboard import (
    ELO_FACTOR,
    Leaderboard,
    fit_leaderboard,
    normalise_battles,
)

JSON_MODEL_KEYS = {
    "model",
    "theta",
    "rating",
    "se",
    "ci_low",
    "ci_high",
    "rank",
    "rank_ub",
    "n_battles",
    "win_rate",
}
JSON_TOP_KEYS = {"models", "constraint", "ties", "iterations", "grad_norm", "warnings"}


def battles(rows, **extra):
    cols = {
        "model_a": [r[0] for r in rows],
        "model_b": [r[1] for r in rows],
        "winner": [r[2] for r in rows],
    }
    cols.update(extra)
    return pl.DataFrame(cols)


# ---------------------------------------------------------- normalisation
def test_labels_are_case_and_space_insensitive():
    df = battles(
        [
            ("x", "y", " Model_A "),
            ("x", "y", "MODEL_B"),
            ("x", "y", "Tie  (BothBad)"),
            ("x", "y", "tie"),
        ]
    )
    ba = normalise_battles(df)
    assert ba.models == ["x", "y"]
    assert ba.outcome.tolist() == [0, 1, 2, 2]


def test_unknown_labels_listed_with_rows():
    df = battles(
        [
            ("x", "y", "model_a"),
            ("x", "y", "win"),
            ("y", "x", "loss"),
            ("x", "y", "win"),
            ("x", "y", None),
        ]
    )
    with pytest.raises(InputError) as err:
        normalise_battles(df)
    msg = str(err.value)
    assert "'win' (rows [1, 3])" in msg and "'loss' (rows [2])" in msg
    assert "'<missing>' (rows [4])" in msg


def test_custom_labels_and_columns():
    df = pl.DataFrame({"p": ["x", "y"], "q": ["y", "x"], "res": ["first", "second"]})
    ba = normalise_battles(
        df,
        model_a="p",
        model_b="q",
        winner="res",
        labels={"first": "model_a", "second": "model_b"},
    )
    assert ba.outcome.tolist() == [0, 1]
    with pytest.raises(InputError, match="expected model_a, model_b or tie"):
        normalise_battles(
            df, model_a="p", model_b="q", winner="res", labels={"first": "x"}
        )
    with pytest.raises(
        InputError, match=r"missing column\(s\) \['model_a', 'model_b'\]"
    ):
        normalise_battles(df)


def test_self_battles_dropped_with_a_count():
    df = battles(
        [
            ("x", "x", "model_a"),
            ("x", "y", "model_a"),
            ("y", "y", "tie"),
            ("y", "x", "model_a"),
        ]
    )
    ba = normalise_battles(df)
    assert ba.n_self_battles == 2 and ba.self_battle_rows == [0, 2]
    assert ba.a.tolist() == [0, 1] and ba.b.tolist() == [1, 0]
    with pytest.warns(
        DataQualityWarning, match=r"dropped 2 self-battle.*rows \[0, 2\]"
    ):
        lb = fit_leaderboard(df)
    assert lb.n_battles == 2


def test_model_only_in_self_battles_disappears():
    df = battles([("z", "z", "model_a"), ("x", "y", "model_a"), ("y", "x", "model_a")])
    with pytest.warns(DataQualityWarning):
        lb = fit_leaderboard(df)
    assert lb.models == ["x", "y"]


def test_weights_validated_and_used():
    df = battles([("x", "y", "model_a"), ("x", "y", "model_b")], w=[3.0, 1.0])
    lb = fit_leaderboard(df, weight="w", scale="log")
    th = {r["model"]: r["theta"] for r in lb.rows}
    assert th["x"] - th["y"] == pytest.approx(math.log(3), abs=1e-10)
    bad = battles([("x", "y", "model_a"), ("x", "y", "model_b")], w=[1.0, -2.0])
    with pytest.raises(InputError, match=r"rows \[1\]"):
        fit_leaderboard(bad, weight="w")


def test_missing_model_name_is_named():
    df = battles([("x", None, "model_a"), ("x", "y", "model_a")])
    with pytest.raises(InputError, match=r"missing model name at rows \[0\]"):
        normalise_battles(df)


# -------------------------------------------------------------- real data
def _golden(shared_data, name):
    g = pl.read_csv(
        shared_data / "llmfao" / f"{name}-golden.csv", infer_schema_length=None
    )
    g = g.filter(pl.col("algorithm") == "bradley_terry")
    return dict(zip(g["item"].cast(pl.Utf8), g["score"]))


@pytest.mark.data
@pytest.mark.parametrize("name", ["llmfao", "simple", "food"])
def test_evalica_bradley_terry_golden(shared_data, name):
    """evalica counts a tie as half a win to each side and reports
    ``exp(theta) / sum(exp(theta))``: our ``ties="half"`` MLE, normalised so."""
    lb = fit_leaderboard(
        shared_data / "llmfao" / f"{name}.csv", ties="half", scale="log"
    )
    gold = _golden(shared_data, name)
    th = {r["model"]: r["theta"] for r in lb.rows}
    assert set(th) == set(gold)
    z = sum(math.exp(t) for t in th.values())
    for m, score in gold.items():
        assert math.exp(th[m]) / z == pytest.approx(score, rel=1e-6), m
    if name == "llmfao":
        assert lb.n_battles == 8931 and len(th) == 59
        assert sum(r["ties"] for r in lb.rows) == 2 * 3471


@pytest.mark.data
def test_arena_hard_leaderboard_with_bootstrap(shared_data):
    path = shared_data / "arena" / "arena_hard_battles.jsonl"
    lb = fit_leaderboard(path, bootstrap=500, seed=7)
    assert lb.n_battles == 1348 and lb.interval == "bootstrap percentile"
    order = [r["model"] for r in lb.rows]
    assert order[-1] == "claude-3-haiku-20240307"
    assert set(order[:2]) == {"gpt-4o", "claude-3-5-sonnet-20240620"}
    # Every battle has haiku on one side: a tree of comparisons, so the fit
    # is saturated and each predicted score equals the observed one.
    df = pl.read_ndjson(path)
    wr = lb.win_rate_matrix()
    for m in order[:-1]:
        sub = df.filter(pl.col("model_b") == m)
        observed = (
            (sub["winner"] == "model_b").sum() + 0.5 * (sub["winner"] == "tie").sum()
        ) / len(sub)
        assert wr.filter(pl.col("model") == m)[
            "claude-3-haiku-20240307"
        ].item() == pytest.approx(observed, abs=1e-10)
    for r in lb.rows:
        assert r["ci_low"] < r["rating"] < r["ci_high"]
        assert r["n_degenerate"] == 0
    # Two leaders overlap, the rest are separated: Arena's rank upper bound.
    assert [r["rank_ub"] for r in lb.rows] == [1, 1, 3, 4]
    # Same seed, same intervals.
    again = fit_leaderboard(path, bootstrap=500, seed=7, n_jobs=1)
    assert again.rows == lb.rows


# ----------------------------------------------------------- result views
def small() -> Leaderboard:
    rows = [("a", "b", "model_a")] * 3 + [
        ("a", "b", "model_b"),
        ("b", "c", "model_a"),
        ("c", "b", "tie"),
        ("a", "c", "model_a"),
        ("c", "a", "model_a"),
    ]
    with pytest.warns(DataQualityWarning, match="no finite estimate"):
        return fit_leaderboard(battles(rows), bootstrap=50, seed=3)


def test_views_agree():
    lb = small()
    d = lb.to_dict()
    assert JSON_TOP_KEYS <= set(d)
    assert all(JSON_MODEL_KEYS <= set(m) for m in d["models"])
    json.dumps(d, allow_nan=False)
    df = lb.to_polars()
    assert df["model"].to_list() == [m["model"] for m in d["models"]]
    assert df["rating"].to_list() == pytest.approx([m["rating"] for m in d["models"]])
    text = lb.summary()
    assert "rank" in text and "a" in text
    assert "<table>" in lb._repr_html_()
    r = d["models"][0]
    assert r["rating"] == pytest.approx(ELO_FACTOR * r["theta"] + 1000)
    assert sum(m["theta"] for m in d["models"]) == pytest.approx(0, abs=1e-12)


def test_anchor_shifts_ratings_not_differences():
    lb = small()
    with pytest.warns(DataQualityWarning, match="no finite estimate"):
        anchored = fit_leaderboard(
            small_rows_frame(), anchor=("b", 1500.0), bootstrap=50, seed=3
        )
    assert anchored.constraint == "anchor b = 1500"
    ra = {r["model"]: r for r in anchored.rows}
    rc = {r["model"]: r for r in lb.rows}
    assert ra["b"]["rating"] == 1500.0
    assert ra["a"]["rating"] - ra["c"]["rating"] == pytest.approx(
        rc["a"]["rating"] - rc["c"]["rating"]
    )
    assert anchored.difference("a", "c")["se"] == pytest.approx(
        lb.difference("a", "c")["se"]
    )
    with pytest.raises(InputError, match="not among the models"):
        fit_leaderboard(small_rows_frame(), anchor=("zz", 1.0))


def small_rows_frame():
    rows = [("a", "b", "model_a")] * 3 + [
        ("a", "b", "model_b"),
        ("b", "c", "model_a"),
        ("c", "b", "tie"),
        ("a", "c", "model_a"),
        ("c", "a", "model_a"),
    ]
    return battles(rows)


def test_log_scale():
    lb = fit_leaderboard(small_rows_frame(), scale="log")
    for r in lb.rows:
        assert r["rating"] == r["theta"]
        assert r["ci_high"] - r["ci_low"] == pytest.approx(
            2 * 1.959964 * r["se"], rel=1e-6
        )


# -------------------------------------------------------------------- CLI
@pytest.mark.data
def test_cli_on_llmfao_as_a_new_user(shared_data, tmp_path, capsys):
    out = tmp_path / "lb.json"
    code = main(
        [
            "leaderboard",
            str(shared_data / "llmfao" / "llmfao.csv"),
            "--bootstrap",
            "100",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    shown = capsys.readouterr().out
    assert "GPT 4" in shown
    d = json.loads(out.read_text())
    assert JSON_TOP_KEYS <= set(d) and len(d["models"]) == 59
    assert d["models"][0]["model"] == "GPT 4" and d["models"][0]["rank"] == 1
    assert d["ties"] == "half" and d["constraint"] == "mean zero"


@pytest.mark.data
def test_cli_options(shared_data, tmp_path):
    out = tmp_path / "lb.json"
    path = shared_data / "arena" / "arena_hard_battles.jsonl"
    code = main(
        [
            "leaderboard",
            str(path),
            "--ties",
            "davidson",
            "--bootstrap",
            "0",
            "--anchor",
            "claude-3-haiku-20240307=1114",
            "--scale",
            "elo",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    d = json.loads(out.read_text())
    haiku = next(m for m in d["models"] if m["model"] == "claude-3-haiku-20240307")
    assert haiku["rating"] == 1114 and haiku["se"] == 0
    assert d["tie_param"] > 0 and d["interval"] == "Wald (Hessian)"


def test_cli_reports_errors(tmp_path, capsys):
    bad = tmp_path / "b.csv"
    bad.write_text("model_a,model_b,winner\nx,y,won\n")
    assert main(["leaderboard", str(bad)]) == 2
    assert "unknown winner label" in capsys.readouterr().err
    split = tmp_path / "s.csv"
    split.write_text("model_a,model_b,winner\nA,B,model_a\nB,A,model_a\nC,D,tie\n")
    assert main(["leaderboard", str(split)]) == 2
    assert "{A, B}; {C, D}" in capsys.readouterr().err
    assert (
        main(
            ["leaderboard", str(split), "--components", "separate", "--bootstrap", "0"]
        )
        == 0
    )
    assert main(["leaderboard", str(split), "--anchor", "A"]) == 2


def test_cli_separation_warning_is_printed(tmp_path):
    f = tmp_path / "n.jsonl"
    rows = [("A", "B", "model_a")] * 2 + [
        ("A", "B", "model_b"),
        ("A", "C", "model_a"),
        ("B", "C", "model_a"),
    ]
    f.write_text(
        "\n".join(
            json.dumps(dict(zip(("model_a", "model_b", "winner"), r))) for r in rows
        )
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlhf_diag.cli",
            "leaderboard",
            str(f),
            "--bootstrap",
            "0",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "never win: C" in res.stderr
    assert "-inf" in res.stdout


def test_separation_warning_class():
    rows = [("A", "B", "model_a"), ("B", "A", "model_a"), ("A", "C", "model_a")]
    with pytest.warns(SeparationWarning, match="never win: C"):
        fit_leaderboard(battles(rows))
    with pytest.warns(SeparationWarning, match="L2 prior alpha = 1.0"):
        lb = fit_leaderboard(battles(rows), alpha=1.0)
    assert np.isfinite(lb.theta_).all() and all(r["status"] == "ok" for r in lb.rows)


def test_cli_style_control(tmp_path):
    f = tmp_path / "style.csv"
    lines = ["model_a,model_b,winner,d"]
    lines += [f"A,B,{w},1" for w in ["model_a"] * 8 + ["model_b"] * 2]
    lines += [f"A,B,{w},-1" for w in ["model_a"] * 4 + ["model_b"] * 6]
    f.write_text("\n".join(lines) + "\n")
    out = tmp_path / "s.json"
    code = main(
        [
            "leaderboard",
            str(f),
            "--style-cols",
            "d",
            "--scale",
            "log",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    d = json.loads(out.read_text())
    assert d["style"][0]["coef"] == pytest.approx(0.895880, abs=1e-6)
    th = {m["model"]: m["theta"] for m in d["models"]}
    assert th["A"] - th["B"] == pytest.approx(0.490415, abs=1e-6)
