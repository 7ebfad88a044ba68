"""The audit end to end, on real data and on cases with a known answer."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import polars as pl
import pytest
from scipy.optimize import minimize

from rlhf_diag.audit import audit, style_differences
from rlhf_diag.exceptions import DataQualityWarning, SeparationWarning
from rlhf_diag.features import FEATURES, text_features
from rlhf_diag.stats import wilson_interval


def exact_two_sided_p(k: int, n: int) -> float:
    """Binomial test of p = 1/2 by summing the pmf over outcomes no more
    likely than k (the definition scipy uses), with exact integers."""
    pk = math.comb(n, k)
    return min(1.0, sum(math.comb(n, j) for j in range(n + 1) if math.comb(n, j) <= pk) / 2**n)


def run_audit(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        warnings.simplefilter("ignore", SeparationWarning)
        return audit(path, **kw)


@pytest.fixture(scope="module")
def helpful(shared_data):
    return run_audit(shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz")


def test_helpful_base_published_counts(helpful):
    d = helpful.to_dict()
    assert d["n_rows_read"] == 2354 and d["n_pairs"] == 2354 and d["skipped"] == {}
    assert d["identical_pairs"] == 2
    ch, wd = d["length"]["chars"], d["length"]["words"]
    assert (ch["chosen_longer"], ch["chosen_shorter"], ch["equal"]) == (1399, 938, 17)
    assert (wd["chosen_longer"], wd["chosen_shorter"], wd["equal"]) == (1387, 919, 48)
    assert d["quality"]["hh_naive_missplits"]["count"] == 9
    # The interval and p-value, computed another way.
    assert ch["frac_chosen_longer"] == pytest.approx(1399 / 2337)
    assert ch["wilson95"] == pytest.approx(wilson_interval(1399, 2337), abs=1e-12)
    assert ch["binomial_p"] == pytest.approx(exact_two_sided_p(1399, 2337), rel=1e-9)
    json.dumps(d)  # every value is JSON-serialisable


def test_harmless_base_chosen_is_shorter(shared_data):
    d = run_audit(shared_data / "hh-rlhf" / "harmless-base" / "test.jsonl.gz").to_dict()
    ch, wd = d["length"]["chars"], d["length"]["words"]
    assert (ch["chosen_longer"], ch["chosen_shorter"], ch["equal"]) == (1025, 1276, 11)
    assert (wd["chosen_longer"], wd["chosen_shorter"], wd["equal"]) == (995, 1272, 45)
    assert ch["wilson95"][1] < 0.5  # significantly shorter


def test_helpful_online_audits(shared_data):
    d = run_audit(shared_data / "hh-rlhf" / "helpful-online" / "test.jsonl.gz").to_dict()
    assert d["n_pairs"] == 1137 and d["identical_pairs"] == 2


@pytest.mark.parametrize("model", [
    "gpt-3.5-turbo-1106", "gpt-3.5-turbo-1106_concise", "gpt-3.5-turbo-1106_verbose",
    "alpaca-7b", "alpaca-7b_concise", "alpaca-7b_verbose"])
def test_alpaca_eval_longer_baseline_usually_wins(shared_data, model):
    path = shared_data / "alpaca_eval" / "results" / model / "annotations.json.gz"
    d = run_audit(path).to_dict()
    assert d["format"] == "alpaca_eval"
    n_draws = sum(v for k, v in d["skipped"].items() if k.startswith("draw"))
    assert d["n_pairs"] + sum(d["skipped"].values()) == d["n_rows_read"]
    assert n_draws >= 1
    share = d["length"]["chars"]["frac_chosen_longer"]
    assert 88 <= round(100 * share) <= 97


def test_length_ratio_bins_partition_unequal_pairs(helpful):
    bins = helpful.length_ratio_bins
    ch = helpful.length["chars"]
    assert sum(b["n"] for b in bins) == ch["chosen_longer"] + ch["chosen_shorter"]
    assert sum(b["longer_chosen"] for b in bins) == ch["chosen_longer"]


def pairs_file(tmp_path, chosen, rejected, prompt=None):
    prompt = prompt or [f"p{i}" for i in range(len(chosen))]
    p = tmp_path / "pairs.jsonl"
    pl.DataFrame({"prompt": prompt, "chosen": chosen, "rejected": rejected}).write_ndjson(p)
    return p


def test_identical_after_truncation_counted(tmp_path):
    chosen = ["same start then A", "abc", "x y z w", "totally different"]
    rejected = ["same start then B", "abc", "x y z q", "nothing alike here"]
    p = pairs_file(tmp_path, chosen, rejected)
    res = run_audit(p, truncate=6)
    q = res.quality
    assert q["identical_pairs"]["count"] == 1 and q["identical_pairs"]["rows"] == [1]
    assert q["identical_after_truncation"]["count"] == 2  # "same s", "x y z "
    assert q["identical_after_truncation"]["rows"] == [0, 2]
    res = run_audit(p, truncate=3, truncate_unit="words")
    assert res.quality["identical_after_truncation"]["rows"] == [0, 2]


def test_duplicates_and_conflicts(tmp_path):
    p = pairs_file(tmp_path, ["a", "a", "b", "c"], ["b", "b", "a", "d"],
                   prompt=["q", "q", "q", "r"])
    q = run_audit(p).quality
    assert q["duplicate_pairs"]["rows"] == [1]
    assert q["conflicting_pairs"]["rows"] == [0, 1, 2]


def test_warnings_name_rows(tmp_path):
    p = pairs_file(tmp_path, ["a", "same", "c"], ["b", "same", "d"])
    with pytest.warns(DataQualityWarning, match=r"1 identical pairs.*first rows: 1"):
        audit(p)


def test_style_fit_matches_independent_optimiser(helpful, shared_data):
    sf = helpful.style_fit
    from rlhf_diag.pairs import load_pairs

    f = load_pairs(shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz").frame
    x, kept, _ = style_differences(text_features(f["chosen"]), text_features(f["rejected"]),
                                   FEATURES)
    assert kept == sf["features"]
    l2 = sf["penalty"]["l2"]

    def nll(w):
        m = x @ w
        return np.logaddexp(0, -m).sum() + 0.5 * l2 * w @ w

    def grad(w):
        s = 1 / (1 + np.exp(x @ w))
        return -(x.T @ s) + l2 * w

    ref = minimize(nll, np.zeros(x.shape[1]), jac=grad, method="BFGS",
                   options={"gtol": 1e-9, "maxiter": 10000})
    coef = np.array([c["coef"] for c in sf["coefficients"]])
    np.testing.assert_allclose(coef, ref.x, atol=1e-4)
    assert sf["converged"] and sf["grad_norm"] < 1e-6
    assert 0.5 < sf["cv"]["accuracy"] < 0.7


def test_swapping_chosen_and_rejected_flips_signs(tmp_path):
    rng = np.random.default_rng(3)
    words = ["alpha", "beta", "**bold**", "- item", "sorry", "# Head", "`x`"]
    a = [" ".join(rng.choice(words, rng.integers(1, 30))) for _ in range(400)]
    b = [" ".join(rng.choice(words, rng.integers(1, 30))) for _ in range(400)]
    r1 = run_audit(pairs_file(tmp_path, a, b)).to_dict()
    r2 = run_audit(pairs_file(tmp_path, b, a)).to_dict()
    c1 = {c["feature"]: c["coef"] for c in r1["style_fit"]["coefficients"]}
    c2 = {c["feature"]: c["coef"] for c in r2["style_fit"]["coefficients"]}
    assert c1.keys() == c2.keys()
    for k in c1:
        assert c1[k] == pytest.approx(-c2[k], abs=1e-9)
    l1, l2 = r1["length"]["chars"], r2["length"]["chars"]
    assert (l1["chosen_longer"], l1["chosen_shorter"]) == (l2["chosen_shorter"], l2["chosen_longer"])


def test_separable_feature_is_named_and_penalised(tmp_path):
    # Chosen always has a code block, rejected never: separation along code_blocks.
    chosen = [f"answer {i}\n```\ncode\n```" for i in range(50)]
    rejected = [f"reply {'x' * (i % 7)}" for i in range(50)]
    with pytest.warns(SeparationWarning, match="code_blocks"):
        res = audit(pairs_file(tmp_path, chosen, rejected))
    sf = res.style_fit
    assert "code_blocks" in sf["separated_features"]
    assert sf["penalty"]["l2"] == 1.0
    assert all(np.isfinite(c["coef"]) for c in sf["coefficients"])


def test_repeats_match_brute_force():
    from rlhf_diag.audit import _repeats

    rng = np.random.default_rng(11)
    vals = list("abcdefgh")
    n = 300
    f = pl.DataFrame({
        "row": np.arange(n, dtype=np.uint32),
        "prompt": rng.choice(["p", "q"], n), "chosen": rng.choice(vals, n),
        "rejected": rng.choice(vals, n)})
    dup, conflict = _repeats(f)
    triples = list(zip(f["prompt"], f["chosen"], f["rejected"]))
    seen, want_dup = set(), []
    for t in triples:
        want_dup.append(t in seen)
        seen.add(t)
    want_conflict = [(p, r, c) in seen for p, c, r in triples]
    assert dup.tolist() == want_dup
    assert conflict.tolist() == want_conflict
    assert 0 < sum(want_dup) < n and 0 < sum(want_conflict) < n
