"""Tests of rlhf_diag.kl: bug-report cases, closed forms, known-truth rollouts."""

from __future__ import annotations

import gzip
import json
import math
import warnings

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rlhf_diag import kl
from rlhf_diag import simulate_kl as sk
from rlhf_diag.cli import main
from rlhf_diag.exceptions import (
    DataFormatError,
    DataQualityWarning,
    InputError,
    UndefinedStatisticError,
)

NINF = float("-inf")


def quiet(fn, *args, **kwargs):
    """Call fn with the negative-k1 warning silenced (checked elsewhere)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return fn(*args, **kwargs)


# ---------------------------------------------------------------- references


def reference_estimators(p, q, keep, clamp=None):
    """Slow, readable per-sequence sums, written from the definitions."""
    out = {e: 0.0 for e in kl.ESTIMATORS}
    clamped = {e: 0 for e in kl.ESTIMATORS}
    n = 0
    for lp, lq, k in zip(p, q, keep):
        if not k:
            continue
        n += 1
        ratio = math.exp(lq - lp)  # r = pi_ref / pi
        vals = {
            "k1": -math.log(ratio),
            "k2": 0.5 * math.log(ratio) ** 2,
            "k3": (ratio - 1) - math.log(ratio),
            "abs": abs(lp - lq),
            "mse": 0.5 * (lp - lq) ** 2,
        }
        for e, v in vals.items():
            if clamp is not None and not clamp[0] <= v <= clamp[1]:
                clamped[e] += 1
                v = min(max(v, clamp[0]), clamp[1])
            out[e] += v
    return out, n, clamped


# ------------------------------------------------------- bug-report cases


def test_negative_k1_is_a_bonus_and_warns():
    with pytest.warns(DataQualityWarning, match="batch mean of k1 is negative"):
        est = kl.estimate_kl([-0.1, -0.2, -2.0], [-0.3, -0.1, -1.0])
    assert est.sums["k1"][0] == pytest.approx(-0.9, abs=1e-14)
    assert est.sums["k2"][0] == pytest.approx(0.525, abs=1e-14)
    assert est.sums["k3"][0] == pytest.approx(0.742183, abs=5e-7)
    assert est.n_tokens.tolist() == [3]
    obj = kl.kl_objective(est, 0.1, reward=[0.0])
    # r - beta*k1 = 0 - 0.1 * (-0.9): the penalty became a +0.09 bonus.
    assert obj.values[0] == pytest.approx(0.09, abs=1e-14)
    assert obj.share_bonus == 1.0
    assert obj.se is None and obj.se_reason == "fewer than two sequences"
    # k3 cannot go negative: the same tokens give a penalty, not a bonus.
    obj3 = kl.kl_objective(est, 0.1, reward=[0.0], estimator="k3")
    assert obj3.values[0] == pytest.approx(-0.0742183, abs=1e-7)
    assert obj3.share_bonus == 0.0


def test_warning_points_at_the_caller():
    with pytest.warns(DataQualityWarning) as rec:
        kl.estimate_kl([-0.1], [0.0])
    assert rec[0].filename == __file__


def test_pad_equal_to_eos_needs_an_explicit_mask():
    ids = np.array([[5, 7, 2, 2, 2]])
    lp = np.array([[-1.0, -0.5, -0.2, -3.0, -3.0]])
    true_mask = np.array([[1, 1, 1, 0, 0]])
    sums, n = kl.sequence_logprobs(lp, mask=true_mask)
    assert sums[0] == pytest.approx(-1.7, abs=1e-14)
    assert (sums / n)[0] == pytest.approx(-0.566667, abs=5e-7)
    by_len, _ = kl.sequence_logprobs(lp, lengths=[3])
    assert by_len[0] == pytest.approx(-1.7, abs=1e-14)
    with pytest.raises(InputError, match="EOS"):
        kl.mask_from_ids(ids, pad_id=2, eos_id=2)
    with pytest.raises(InputError, match="EOS"):
        kl.mask_from_ids(ids, pad_id=2, eos_id=None)
    # The two wrong answers the bug reports got:
    wrong, _ = kl.sequence_logprobs(lp, mask=ids != 2)
    assert wrong[0] == pytest.approx(-1.5, abs=1e-14)
    unmasked, _ = kl.sequence_logprobs(lp)
    assert unmasked[0] == pytest.approx(-7.7, abs=1e-14)
    # With distinct ids the id mask is allowed and keeps EOS.
    ok = kl.mask_from_ids([[5, 7, 3, 0, 0]], pad_id=0, eos_id=3)
    assert ok.tolist() == [[True, True, True, False, False]]


def test_infinities_outside_the_mask_are_never_read():
    p, q = [[-0.5, -1.0, NINF]], [[-0.7, -0.9, NINF]]
    est = kl.estimate_kl(p, q, mask=[[1, 1, 0]])
    assert est.sums["k1"][0] == pytest.approx(0.1, abs=1e-14)
    assert est.sums["k3"][0] == pytest.approx(0.0239017, abs=5e-8)
    assert all(np.isfinite(est.sums[e][0]) for e in kl.ESTIMATORS)
    with pytest.raises(
        InputError, match="sequence 0, position 2: policy log-prob is -inf"
    ):
        kl.estimate_kl(p, q)
    with pytest.raises(InputError, match="sequence 1, position 0: reference"):
        kl.estimate_kl([[-1.0], [-1.0]], [[-1.0], [float("nan")]])


def test_k3_is_finite_in_float64_where_float32_overflows():
    est = quiet(kl.estimate_kl, [-100.0], [0.0])
    assert est.sums["k3"][0] == pytest.approx(2.6881171e43, rel=5e-8)
    assert est.sums["k3"][0] == pytest.approx(math.exp(100) - 101, rel=1e-15)
    with np.errstate(over="ignore"):
        f32 = np.exp(np.float32(100.0)) - np.float32(1) - np.float32(100.0)
    assert np.isinf(f32)
    with pytest.raises(InputError, match="k3 overflows float64"):
        kl.estimate_kl([-800.0], [0.0])
    c = quiet(kl.estimate_kl, [-800.0], [0.0], clamp=(-10, 10))
    assert c.sums["k3"][0] == 10.0 and c.clamped["k3"] == 1


def test_dpo_sum_versus_mean_aggregation():
    args = (
        np.full((1, 10), -1.0),
        np.full((1, 10), -1.1),
        np.full((1, 50), -1.0),
        np.full((1, 50), -1.05),
    )
    s = kl.dpo_implicit_rewards(*args, beta=0.1, aggregation="sum")
    assert s.chosen[0] == pytest.approx(0.10, abs=1e-12)
    assert s.rejected[0] == pytest.approx(0.25, abs=1e-12)
    assert s.margins[0] == pytest.approx(-0.15, abs=1e-12)
    assert s.loss == pytest.approx(0.770957, abs=5e-7)
    assert s.accuracy_strict == 0.0  # wrong only because rejected is longer
    m = kl.dpo_implicit_rewards(*args, beta=0.1, aggregation="mean")
    assert m.chosen[0] == pytest.approx(0.010, abs=1e-12)
    assert m.rejected[0] == pytest.approx(0.005, abs=1e-12)
    assert m.margins[0] == pytest.approx(0.005, abs=1e-12)
    assert m.loss == pytest.approx(0.690650, abs=5e-7)
    assert m.accuracy_strict == 1.0
    assert s.margin_length_corr is None and "three" in s.corr_reason


def test_dpo_ties_masks_and_length_correlation():
    # Three pairs: one tie, margins built to track the length difference.
    d = kl.dpo_rewards_from_sums(
        [-10.0, -10.0, -20.0],
        [-11.0, -10.0, -20.0],
        [-10.0, -10.0, -20.0],
        [-10.0, -10.0, -22.0],
        beta=0.5,
        n_chosen=[12, 10, 5],
        n_rejected=[10, 10, 9],
    )
    assert d.margins.tolist() == pytest.approx([0.5, 0.0, -1.0])
    assert d.n_ties == 1
    assert d.accuracy_strict == pytest.approx(1 / 3)
    assert d.accuracy_with_ties == pytest.approx(0.5)
    expected = np.corrcoef([0.5, 0.0, -1.0], [2, 0, -4])[0, 1]
    assert d.margin_length_corr == pytest.approx(expected)
    assert d.loss == pytest.approx(np.mean(np.log1p(np.exp(-d.margins))))
    # Masked tokens (with -inf padding) enter neither sum nor count.
    pad = kl.dpo_implicit_rewards(
        [[-1.0, NINF]],
        [[-1.1, NINF]],
        [[-1.0, -1.0]],
        [[-1.05, -1.05]],
        beta=0.1,
        aggregation="mean",
        chosen_lengths=[1],
    )
    assert pad.chosen[0] == pytest.approx(0.01) and pad.n_chosen[0] == 1


# -------------------------------------------------------- Schulman's table


@pytest.mark.parametrize(
    ("mu", "published"),
    [
        # Schulman (2020), relative bias and std, as printed (rounded).
        (0.1, {"k1": (0, 20), "k2": (0.002, 1.42), "k3": (0, 1.42)}),
        (1.0, {"k1": (0, 2), "k2": (0.25, 1.73), "k3": (0, 1.7)}),
    ],
)
def test_gaussian_table_closed_form(mu, published):
    t = sk.gaussian_estimator_table(mu)
    assert t["kl"] == pytest.approx(mu * mu / 2)
    assert t["k1"]["std"] == pytest.approx(2 / mu)
    for k, (bias, std) in published.items():
        assert t[k]["bias"] == pytest.approx(bias, abs=0.001)
        assert t[k]["std"] == pytest.approx(std, abs=0.005)
    assert t["k2"]["bias"] == pytest.approx(mu * mu / 4)


@pytest.mark.parametrize("mu", [0.1, 1.0])
def test_gaussian_table_by_simulation(mu):
    n = 200_000
    lq, lp = sk.gaussian_logprobs(n, mu, seed=7)
    # One token per sequence: a padded (n, 1) array.
    est = quiet(kl.estimate_kl, lq[:, None], lp[:, None])
    truth = sk.gaussian_estimator_table(mu)
    true_kl = truth["kl"]
    for k in ("k1", "k2", "k3"):
        x = est.sums[k] / true_kl
        sd = x.std(ddof=1)
        bias_se = sd / math.sqrt(n)
        assert abs(x.mean() - 1 - truth[k]["bias"]) < 4 * bias_se, k
        kurt = np.mean((x - x.mean()) ** 4) / sd**4
        sd_se = sd * math.sqrt((kurt - 1) / (4 * n))
        assert abs(sd - truth[k]["std"]) < 5 * sd_se, k


# ----------------------------------------------- categorical known truth


@pytest.fixture(scope="module")
def rollouts():
    return sk.simulate_rollouts(
        20_000, 8, 12, seed=11, shifts=(0.6,), layout="padded", min_len=1
    )


def test_k1_k3_unbiased_and_k2_bias_exact(rollouts):
    est = kl.estimate_kl_frame(rollouts)
    assert est.selection == "mask"
    truth = rollouts["kl_exact"].to_numpy()
    k2_truth = rollouts["k2_exact"].to_numpy()
    n = len(truth)
    for k in ("k1", "k3"):
        d = est.values(k) - truth
        assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(n), k
    d2 = est.values("k2") - truth
    exact_bias = np.mean(k2_truth - truth)
    resid = d2 - (k2_truth - truth)
    assert abs(resid.mean()) < 4 * resid.std(ddof=1) / math.sqrt(n)
    # The bias is large enough here to be told from zero.
    assert abs(exact_bias) > 4 * d2.std(ddof=1) / math.sqrt(n)


def test_layouts_agree(rollouts):
    small = rollouts.head(300)
    padded = kl.estimate_kl_frame(small)
    by_len = kl.estimate_kl_frame(small, length_col="response_length")
    lens = small["response_length"].to_numpy()
    ragged = pl.DataFrame(
        {
            "policy_logprobs": [r[:m] for r, m in zip(small["policy_logprobs"], lens)],
            "ref_logprobs": [r[:m] for r, m in zip(small["ref_logprobs"], lens)],
        }
    )
    rag = kl.estimate_kl_frame(ragged)
    assert rag.selection == "all tokens"
    dense = kl.estimate_kl(
        np.array(small["policy_logprobs"].to_list()),
        np.array(small["ref_logprobs"].to_list()),
        lengths=lens,
    )
    for e in kl.ESTIMATORS:
        for other in (by_len, rag, dense):
            np.testing.assert_array_equal(padded.sums[e], other.sums[e])
    # Ignoring the padding (pad log-probs -20 on both sides gives k = 0)
    # changes token counts, so per-token means go wrong.
    naive = kl.estimate_kl_frame(small.drop("mask", "response_length"))
    assert naive.n_tokens.sum() > padded.n_tokens.sum()
    assert naive.token_mean("k3") < padded.token_mean("k3")


def test_full_equals_exact_kl():
    model = sk.categorical_model(6, 5, seed=3, shift=0.8)
    lengths = np.array([5, 2, 0, 3])
    logits_p = np.broadcast_to(model.policy_logits, (4, 5, 6)).copy()
    logits_q = np.broadcast_to(model.ref_logits, (4, 5, 6)).copy()
    logits_p[1, 2:] = np.nan  # padding rows are never read
    sums, n = kl.full_kl(logits_p, logits_q, lengths=lengths)
    per_pos = model.kl()
    expected = [per_pos[:m].sum() for m in lengths]
    np.testing.assert_allclose(sums, expected, rtol=1e-12, atol=1e-15)
    assert n.tolist() == lengths.tolist()
    # Ragged rows with offsets give the same, and log-probs equal logits.
    rows_p = np.concatenate([model.policy_logprobs[:m] for m in lengths])
    rows_q = np.concatenate([model.ref_logprobs[:m] for m in lengths])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    s2, _ = kl.full_kl(rows_p, rows_q, offsets=offsets)
    np.testing.assert_allclose(s2, expected, rtol=1e-12, atol=1e-15)
    with pytest.raises(InputError, match="zero probability"):
        q0 = model.ref_logits.copy()
        q0[0, 0] = NINF
        kl.full_kl(model.policy_logits, q0)


def test_full_alongside_sampled_estimators():
    model = sk.categorical_model(5, 4, seed=2)
    ids = np.array([[0, 1, 2, 3], [4, 4, 0, 1]])
    pos = np.arange(4)
    lp, lq = model.policy_logprobs[pos, ids], model.ref_logprobs[pos, ids]
    est = quiet(
        kl.estimate_kl,
        lp,
        lq,
        lengths=[4, 2],
        policy_logits=np.stack([model.policy_logits] * 2),
        ref_logits=np.stack([model.ref_logits] * 2),
    )
    assert est.estimators[-1] == "full"
    np.testing.assert_allclose(est.full, [model.kl().sum(), model.kl()[:2].sum()])
    assert "full" in est.to_dict()["summary"]


def test_full_with_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    model = sk.categorical_model(6, 5, seed=3, shift=0.8)
    p = torch.tensor(np.stack([model.policy_logits] * 2))
    q = torch.tensor(np.stack([model.ref_logits] * 2))
    sums, n = kl.full_kl(p, q, lengths=[5, 2])
    np.testing.assert_allclose(sums, [model.kl().sum(), model.kl()[:2].sum()])
    assert n.tolist() == [5, 2]


# ----------------------------------------- core against the reference


@st.composite
def ragged_batches(draw):
    n = draw(st.integers(1, 6))
    lens = draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))
    finite = st.floats(-8, 0, allow_nan=False)
    p = [draw(st.lists(finite, min_size=m, max_size=m)) for m in lens]
    q = [draw(st.lists(finite, min_size=m, max_size=m)) for m in lens]
    mask = [draw(st.lists(st.booleans(), min_size=m, max_size=m)) for m in lens]
    return p, q, mask


@settings(max_examples=60, deadline=None)
@given(ragged_batches(), st.sampled_from([None, (-0.5, 0.7)]))
def test_core_matches_reference(batch, clamp):
    p, q, mask = batch
    # Poison unselected positions: they must never be read.
    p = [[x if k else NINF for x, k in zip(r, m)] for r, m in zip(p, mask)]
    est = quiet(kl.estimate_kl, p, q, mask=mask, clamp=clamp)
    total = {e: 0 for e in kl.ESTIMATORS}
    for i, (rp, rq, rm) in enumerate(zip(p, q, mask)):
        ref, n, clamped = reference_estimators(rp, rq, rm, clamp)
        assert est.n_tokens[i] == n
        for e in kl.ESTIMATORS:
            assert est.sums[e][i] == pytest.approx(ref[e], rel=1e-12, abs=1e-12)
            total[e] += clamped[e]
    if clamp is not None:
        assert est.clamped == total
    # Permuting sequences permutes the output.
    perm = list(range(len(p)))[::-1]
    rev = quiet(
        kl.estimate_kl,
        [p[i] for i in perm],
        [q[i] for i in perm],
        mask=[mask[i] for i in perm],
        clamp=clamp,
    )
    np.testing.assert_array_equal(rev.sums["k3"], est.sums["k3"][perm])


def test_ragged_inputs_in_every_form():
    p = [[-0.5, -1.0], [-0.2], []]
    q = [[-0.7, -0.9], [-0.1], []]
    base = quiet(kl.estimate_kl, p, q)
    forms = [
        (pl.Series(p), pl.Series(q)),
        (pa.array(p), pa.array(q)),
        (pa.chunked_array([pa.array(p[:1]), pa.array(p[1:])]), pa.array(q)),
        (pa.array([[0.0]] + p).slice(1), pa.array(q)),  # sliced array
    ]
    for fp, fq in forms:
        other = quiet(kl.estimate_kl, fp, fq)
        np.testing.assert_array_equal(other.sums["k1"], base.sums["k1"])
    assert base.n_tokens.tolist() == [2, 1, 0]
    # Nulls (JSON's padding) are fine outside the mask, an error inside.
    nulls = [[-0.5, None], [-0.2]]
    ok = quiet(kl.estimate_kl, nulls, [[-0.7, None], [-0.1]], lengths=[1, 1])
    assert ok.sums["k1"][0] == pytest.approx(0.2)
    with pytest.raises(InputError, match="sequence 0, position 1"):
        kl.estimate_kl(nulls, [[-0.7, -1.0], [-0.1]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": [[-1.0, -2.0]], "q": [[-1.0]]}, "sequence 0 has 1 tokens"),
        ({"p": [[-1.0]], "q": [[-1.0]], "mask": [[1, 1]]}, "mask: sequence 0"),
        ({"p": [[-1.0]], "q": [[-1.0]], "mask": [[2]]}, "0/1"),
        ({"p": [[-1.0]], "q": [[-1.0]], "lengths": [2]}, "sequence 0: length 2"),
        ({"p": [[-1.0]], "q": [[-1.0]], "lengths": [1], "mask": [[1]]}, "not both"),
        ({"p": np.zeros((2, 3)), "q": np.zeros((2, 2))}, "shape"),
        ({"p": [["a"]], "q": [[-1.0]]}, "policy log-probs"),
        ({"p": [[-1.0]], "q": [[-1.0]], "clamp": (1, 0)}, "lo <= hi"),
        ({"p": [[-1.0], None], "q": [[-1.0], [0.0]]}, "row 1 is null"),
    ],
)
def test_input_errors_name_the_problem(kwargs, match):
    p, q = kwargs.pop("p"), kwargs.pop("q")
    with pytest.raises(InputError, match=match):
        kl.estimate_kl(p, q, **kwargs)


# ----------------------------------------------------------- objective


def test_objective_mean_se_and_aggregations():
    p = np.array([[-1.0, -1.0, -1.0], [-0.5, -2.0, 0.0], [-1.5, -0.5, -1.0]])
    q = np.array([[-1.2, -1.1, -1.0], [-0.4, -2.5, 0.0], [-1.0, -1.0, -1.0]])
    lengths = [3, 2, 1]
    est = kl.estimate_kl(p, q, lengths=lengths, reward=[1.0, 2.0, 0.5])
    k1 = np.array([0.3, -0.1 + 0.5, -0.5])
    np.testing.assert_allclose(est.values("k1"), k1, atol=1e-14)
    obj = kl.kl_objective(est, 0.2)
    expected = np.array([1.0, 2.0, 0.5]) - 0.2 * k1
    np.testing.assert_allclose(obj.values, expected, atol=1e-14)
    assert obj.mean == pytest.approx(expected.mean())
    assert obj.se == pytest.approx(expected.std(ddof=1) / math.sqrt(3))
    assert obj.share_bonus == pytest.approx(1 / 3)
    per_tok = kl.kl_objective(est, 0.2, aggregation="mean")
    np.testing.assert_allclose(per_tok.kl, k1 / np.array(lengths), atol=1e-14)
    assert est.token_mean("k1") == pytest.approx(k1.sum() / 6)
    with pytest.raises(InputError, match="rewards"):
        kl.kl_objective(kl.estimate_kl(p, q), 0.1)
    empty = quiet(kl.estimate_kl, p, q, lengths=[3, 0, 1], reward=[0, 0, 0])
    with pytest.raises(UndefinedStatisticError, match="sequence 1 has no selected"):
        kl.kl_objective(empty, 0.1, aggregation="mean")


def test_ppo_token_rewards_place_the_score_on_the_last_token():
    p = np.array([[-0.1, -0.2, -2.0, NINF], [-1.0, NINF, -0.5, NINF]])
    q = np.array([[-0.3, -0.1, -1.0, NINF], [-1.5, NINF, -0.5, NINF]])
    mask = np.array([[1, 1, 1, 0], [1, 0, 1, 0]], dtype=bool)
    out = quiet(kl.ppo_token_rewards, p, q, [1.0, 2.0], beta=0.1, mask=mask)
    expected = np.array([[-0.02, 0.01, 0.1 + 1.0, 0.0], [-0.05, 0.0, 0.0 + 2.0, 0.0]])
    np.testing.assert_allclose(out, expected, atol=1e-14)
    rag = quiet(
        kl.ppo_token_rewards,
        [[-0.1, -0.2], [-1.0]],
        [[-0.3, -0.1], [-1.5]],
        [1.0, 2.0],
        beta=0.1,
        estimator="k3",
    )
    k3 = [math.expm1(-0.2) + 0.2, math.expm1(0.1) - 0.1, math.expm1(-0.5) + 0.5]
    assert rag[0].tolist() == pytest.approx([-0.1 * k3[0], 1 - 0.1 * k3[1]])
    assert rag[1].tolist() == pytest.approx([2 - 0.1 * k3[2]])
    with pytest.raises(InputError, match="sequence 1 has no selected token"):
        kl.ppo_token_rewards(p, q, [1.0, 2.0], beta=0.1, lengths=[1, 0])


def test_reward_kl_curve_by_step(rollouts):
    df = sk.simulate_rollouts(400, 8, 6, seed=5, shifts=(0.0, 0.5, 1.5))
    est = kl.estimate_kl_frame(df)
    curve = kl.reward_kl_curve(est, estimator="k3")
    t = curve.to_polars()
    assert t["level"].to_list() == [0, 1, 2]
    for step in range(3):
        sub = df.filter(pl.col("step") == step)
        k3 = est.values("k3")[df["step"].to_numpy() == step]
        row = t.row(step, named=True)
        assert row["reward_mean"] == pytest.approx(sub["reward"].mean())
        assert row["kl_mean"] == pytest.approx(k3.mean())
        assert row["kl_se"] == pytest.approx(k3.std(ddof=1) / 20)
    # shift 0: the policy is the reference, every estimator is exactly 0.
    assert t["kl_mean"][0] == 0.0
    assert t["kl_mean"][1] < t["kl_mean"][2]
    assert t["reward_mean"][0] < t["reward_mean"][2]


# ---------------------------------------------- best-of-n and Gao fits


def test_bon_bound_values_and_exactness_without_ties():
    assert kl.bon_kl_bound(1) == 0.0
    assert kl.bon_kl_bound(2) == pytest.approx(math.log(2) - 0.5)
    np.testing.assert_allclose(
        kl.bon_kl_bound(np.array([4, 16])), [math.log(4) - 0.75, math.log(16) - 15 / 16]
    )
    # Continuous rewards: BoN density n u^(n-1) on the base quantile u.
    from scipy import integrate

    n = 5
    exact, _ = integrate.quad(
        lambda u: n * u ** (n - 1) * math.log(n * u ** (n - 1)), 0, 1
    )
    assert kl.bon_kl_bound(n) == pytest.approx(exact, rel=1e-9)
    # k equally likely reward values (ties): the exact KL is below the bound.
    for k in (2, 10, 1000):
        j = np.arange(1, k + 1)
        pmf = (j / k) ** n - ((j - 1) / k) ** n
        tied = float(np.sum(pmf * np.log(pmf * k)))
        assert tied < kl.bon_kl_bound(n)
    assert kl.bon_kl_bound(n) - tied < 1e-2
    with pytest.raises(InputError):
        kl.bon_kl_bound(0)
    with pytest.raises(InputError):
        kl.bon_kl_bound(2.5)


def test_gao_fits_recover_known_curves():
    kl_pts = np.linspace(0.0, 16.0, 9)
    d = np.sqrt(kl_pts)
    bon = kl.fit_overoptimization(kl_pts, d * (1.0 - 0.25 * d), form="bon")
    assert (bon.alpha, bon.beta) == pytest.approx((1.0, 0.25), abs=1e-10)
    assert bon.peak_kl == pytest.approx(4.0) and bon.peak_reward == pytest.approx(1.0)
    assert bon.peak_beyond_data is False
    log_d = np.log(np.where(d > 0, d, 1.0))
    rl = kl.fit_overoptimization(kl_pts, d * (1.0 - 0.5 * log_d), form="rl")
    assert (rl.alpha, rl.beta) == pytest.approx((1.0, 0.5), abs=1e-10)
    assert rl.peak_kl == pytest.approx(math.e**2)
    assert rl.peak_reward == pytest.approx(0.5 * math.e)


def test_gao_fit_intervals_cover_and_no_peak_is_refused():
    rng = np.random.default_rng(4)
    x = np.repeat(np.linspace(0.5, 20.0, 12), 3)
    d = np.sqrt(x)
    y = d * (0.8 - 0.1 * d) + 0.05 * rng.standard_normal(len(x))
    fit = kl.fit_overoptimization(x, y, form="bon", level=0.95)
    assert fit.alpha_ci[0] < 0.8 < fit.alpha_ci[1]
    assert fit.beta_ci[0] < 0.1 < fit.beta_ci[1]
    assert fit.peak_kl_ci[0] < 16.0 < fit.peak_kl_ci[1]
    np.testing.assert_allclose(fit.predict(x), d * (fit.alpha - fit.beta * d))
    assert set(fit.to_polars()["name"]) == {"alpha", "beta", "peak_kl", "peak_reward"}
    rising = kl.fit_overoptimization(x, d * (0.8 + 0.1 * d), form="bon")
    assert rising.peak_kl is None and "no maximum" in rising.peak_reason
    with pytest.raises(UndefinedStatisticError):
        kl.fit_overoptimization([1.0, 2.0], [0.1, 0.2])
    with pytest.raises(InputError):
        kl.fit_overoptimization([-1.0, 2.0, 3.0], [0.1, 0.2, 0.3])


# ---------------------------------------------------- results and CLI


def test_result_objects_render():
    est = quiet(
        kl.estimate_kl,
        [[-0.5, -1.0], [-0.2, -0.3]],
        [[-0.7, -0.9], [-0.1, -0.2]],
        reward=[1.0, 0.0],
    )
    d = est.to_dict()
    assert d["per_sequence"][0] == pytest.approx(
        {
            "k1": 0.1,
            "k2": 0.025,
            "n_tokens": 2,
            "reward": 1.0,
            "abs": 0.3,
            "mse": 0.025,
            "k3": math.expm1(-0.2) + 0.2 + math.expm1(0.1) - 0.1,
        }
    )
    assert set(d["summary"]["k3"]) == {"mean", "se", "min", "max"}
    json.dumps(d)
    frame = est.to_polars()
    assert frame.columns[:6] == ["k1", "k2", "k3", "abs", "mse", "n_tokens"]
    assert "k3" in est.summary() and "<table>" in est._repr_html_()
    assert "objective" in kl.kl_objective(est, 0.1).summary()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_cli_on_a_generated_rollout_file(tmp_path, capsys, suffix):
    df = sk.simulate_rollouts(300, 8, 10, seed=9, shifts=(0.3, 1.0), layout="padded")
    path = sk.write_rollouts(df, tmp_path / f"rollouts{suffix}")
    out = tmp_path / "kl.json"
    rc = main(["kl", str(path), "--beta", "0.05", "--json", str(out)])
    assert rc == 0
    shown = capsys.readouterr().out
    assert "k3" in shown and "objective" in shown
    got = json.loads(out.read_text())
    assert len(got["per_sequence"]) == 600
    assert set(got["per_sequence"][0]) >= {"k1", "k2", "k3", "abs", "mse", "n_tokens"}
    api = kl.estimate_kl_frame(df)
    k1 = [r["k1"] for r in got["per_sequence"]]
    np.testing.assert_allclose(k1, api.values("k1"), rtol=1e-12)
    assert [r["n_tokens"] for r in got["per_sequence"]] == df[
        "response_length"
    ].to_list()
    assert got["summary"]["k3"]["mean"] == pytest.approx(api.describe("k3")["mean"])
    obj = got["objective"]
    assert obj["beta"] == 0.05 and obj["estimator"] == "k1"
    expected = (df["reward"].to_numpy() - 0.05 * api.values("k1")).mean()
    assert obj["mean"] == pytest.approx(expected)
    assert [r["level"] for r in got["reward_vs_kl"]["rows"]] == [0, 1]


def test_cli_errors_are_reported(tmp_path, capsys):
    df = sk.simulate_rollouts(20, 4, 5, seed=1).drop("reward")
    path = sk.write_rollouts(df, tmp_path / "r.jsonl")
    assert main(["kl", str(path), "--mask-col", "nope"]) == 2
    assert "--mask-col: column 'nope' not found" in capsys.readouterr().err
    assert (
        main(["kl", str(path), "--clamp=-1,1", "--length-col", "response_length"]) == 0
    )


# ------------------------------------------- defects of the first user


def _write_lines(path, rows):
    """JSONL exactly as Python's json.dumps writes it (NaN, -Infinity...)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


PY_ROWS = [
    # -inf, NaN and null padding, as docs/kl.md allows; +inf outside the mask.
    {"policy_logprobs": [-0.5, -1.0, NINF], "ref_logprobs": [-0.7, -0.9, NINF],
     "mask": [1, 1, 0], "reward": 1.0, "step": 0},
    {"policy_logprobs": [-0.2, float("nan")], "ref_logprobs": [-0.1, None],
     "mask": [1, 0], "reward": 0.5, "step": 1},
    {"policy_logprobs": [-0.3, float("inf")], "ref_logprobs": [-0.6, NINF],
     "mask": [1, 0], "reward": 2.0, "step": 1},
]  # fmt: skip
PY_K1 = [0.1, -0.1, 0.3]  # per-sequence sums of log pi - log pi_ref


def test_json_with_nan_and_infinity_tokens_is_read(tmp_path, capsys):
    path = _write_lines(tmp_path / "py.jsonl", PY_ROWS)
    assert "-Infinity" in path.read_text() and "NaN" in path.read_text()
    frame = kl.read_rollouts(path)
    pol, ref = frame["policy_logprobs"].to_list(), frame["ref_logprobs"].to_list()
    assert pol[0][2] == NINF and math.isnan(pol[1][1]) and pol[2][1] == math.inf
    assert ref[1][1] is None  # null stays null
    out = tmp_path / "kl.json"
    assert main(["kl", str(path), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    k1 = [r["k1"] for r in got["per_sequence"]]
    np.testing.assert_allclose(k1, PY_K1, atol=1e-14)
    assert [r["n_tokens"] for r in got["per_sequence"]] == [2, 1, 1]
    # A JSON array of records with the same tokens, gzipped, reads the same.
    arr = tmp_path / "py.json.gz"
    arr.write_bytes(gzip.compress(json.dumps(PY_ROWS).encode()))
    assert kl.read_rollouts(arr)["mask"].to_list() == [[1, 1, 0], [1, 0], [1, 0]]
    # Inside the mask, a NaN is refused with its sequence and position.
    rows = json.loads(json.dumps(PY_ROWS))
    rows[1]["mask"] = [1, 1]
    assert main(["kl", str(_write_lines(tmp_path / "in.jsonl", rows))]) == 2
    assert "sequence 1, position 1: policy log-prob is NaN" in capsys.readouterr().err


def test_an_unparseable_line_is_named(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(PY_ROWS[0])
    path.write_text(f"{good}\n\n{good}\n" + '{"policy_logprobs": [-0.2, NaN,}\n')
    with pytest.raises(DataFormatError, match=r"line 4 is not valid JSON \(Expecting"):
        kl.read_rollouts(path)
    assert main(["kl", str(path)]) == 2
    assert "bad.jsonl: line 4 is not valid JSON" in capsys.readouterr().err
    path.write_text(f"{good}\n[1, 2]\n")
    with pytest.raises(DataFormatError, match="line 2 holds a JSON list"):
        kl.read_rollouts(path)


def test_positive_logprobs_are_refused_beyond_rounding():
    p = [[-1.0, -0.5, 9.0], [-0.2, 5.0, -1.0]]
    q = [[-1.0, -0.7, -1.0], [-0.1, -0.3, -1.0]]
    mask = [[1, 1, 0], [1, 1, 1]]  # the 9.0 is padding and is never read
    msg = (
        r"sequence 1, position 1: policy log-prob is 5 > 0 in a selected token; "
        r"log-probs must be <= 0 \(up to 1e-6 for rounding\)"
    )
    with pytest.raises(InputError, match=msg):
        kl.estimate_kl(p, q, mask=mask)
    with pytest.raises(InputError, match="position 1: reference log-prob is 5"):
        kl.estimate_kl(q, p, mask=mask)
    # Selected by lengths, not a mask: the message does not speak of a mask.
    with pytest.raises(InputError, match=msg):
        kl.estimate_kl(p, q, lengths=[2, 3])
    with pytest.raises(InputError, match="sequence 1, position 1"):
        kl.sequence_logprobs(p, mask=mask)
    with pytest.raises(InputError, match="sequence 1, position 1"):
        kl.ppo_token_rewards(p, q, [0.0, 0.0], beta=0.1, mask=mask)
    # Rounding slack: +1e-7 is used as given (k1 = 1e-7 - (-1)), 2e-6 is not.
    est = kl.estimate_kl([[1e-7]], [[-1.0]])
    assert est.sums["k1"][0] == pytest.approx(1.0 + 1e-7, abs=1e-15)
    assert kl.LOGPROB_TOL == 1e-6
    with pytest.raises(InputError, match="policy log-prob is 0.000002 > 0"):
        kl.estimate_kl([[2e-6]], [[-1.0]])


def test_missing_rewards_are_called_null_not_nan(tmp_path, capsys):
    p, q = [[-0.5], [-0.2], [-0.3]], [[-0.7], [-0.1], [-0.6]]
    with pytest.raises(InputError, match=r"reward: sequence 1 is null \(missing\)"):
        quiet(kl.estimate_kl, p, q, reward=[1.0, None, 2.0])
    with pytest.raises(InputError, match="reward: sequence 2 is NaN"):
        quiet(kl.estimate_kl, p, q, reward=[1.0, 0.0, float("nan")])
    with pytest.raises(InputError, match="reward: sequence 0 is inf"):
        quiet(kl.estimate_kl, p, q, reward=[math.inf, 0.0, 1.0])
    rows = json.loads(json.dumps(PY_ROWS))
    rows[2]["reward"] = None
    path = _write_lines(tmp_path / "null.jsonl", rows)
    assert main(["kl", str(path)]) == 2
    err = capsys.readouterr().err
    assert "reward column 'reward': sequence 2 is null (missing)" in err
    assert "nan" not in err.lower()


def test_curve_level_with_one_sequence_shows_a_dash(tmp_path, capsys):
    path = _write_lines(tmp_path / "py.jsonl", PY_ROWS)
    out = tmp_path / "kl.json"
    assert main(["kl", str(path), "--json", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "None" not in shown
    level0 = next(line for line in shown.splitlines() if line.startswith("│     0"))
    assert level0.count("—") == 2  # reward_se and kl_se of the one-row level
    assert "—: one sequence at that level, no standard error" in shown
    rows = json.loads(out.read_text())["reward_vs_kl"]["rows"]
    assert rows[0]["n"] == 1 and rows[0]["reward_se"] is None
    assert rows[0]["kl_se"] is None
    assert rows[0]["se_reason"] == "one sequence at this level, no standard error"
    assert rows[1]["n"] == 2 and rows[1]["se_reason"] is None
    assert rows[1]["reward_se"] == pytest.approx(0.75)  # sd(0.5, 2.0) / sqrt(2)


def test_options_are_checked_before_any_work(tmp_path, capsys):
    df = sk.simulate_rollouts(20, 4, 5, seed=1).drop("reward")
    path = sk.write_rollouts(df, tmp_path / "r.jsonl")
    out = tmp_path / "kl.json"
    assert main(["kl", str(path), "--beta", "0.1", "--json", str(out)]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""  # no table printed before the error
    assert "--beta needs per-sequence rewards" in cap.err and "--reward-col" in cap.err
    assert not out.exists()
    missing = tmp_path / "no_such_dir" / "x.json"
    full = sk.write_rollouts(
        sk.simulate_rollouts(20, 4, 5, seed=1), tmp_path / "f.jsonl"
    )
    assert main(["kl", str(full), "--json", str(missing)]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert f"--json {missing}: folder {missing.parent} does not exist" in cap.err
    assert main(["kl", str(full), "--json", str(tmp_path)]) == 2
    assert "--json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--policy-col", "lp"], "--policy-col"),
        (["--ref-col", "lq"], "--ref-col"),
        (["--length-col", "len"], "--length-col"),
        (["--reward-col", "score"], "--reward-col"),
        (["--step-col", "epoch"], "--step-col"),
        (["--beta", "-1"], "--beta"),
        (["--beta", "nan"], "--beta"),
        (
            ["--length-col", "zero", "--beta", "0.1", "--aggregation", "mean"],
            "--aggregation mean",
        ),
    ],
)
def test_cli_errors_name_options(tmp_path, capsys, argv, option):
    df = sk.simulate_rollouts(20, 4, 5, seed=1).with_columns(zero=pl.lit(0))
    path = sk.write_rollouts(df, tmp_path / "r.jsonl")
    assert main(["kl", str(path), *argv]) == 2
    cap = capsys.readouterr()
    # Warnings about the data may come first; the error is the last line.
    assert cap.err.strip().splitlines()[-1].startswith(f"error: {option}")
    assert cap.out == ""
    # Python parameter names (policy_col, n_jobs...) never reach the user.
    assert "_col" not in cap.err and "n_jobs" not in cap.err


def test_bad_clamp_names_the_option(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["kl", str(tmp_path / "r.jsonl"), "--clamp=1,0"])
    assert exc.value.code == 2
    assert "--clamp" in capsys.readouterr().err


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([-1.0, 0.0, NINF, float("inf"), float("nan")]), max_size=8
    ),
    st.lists(st.integers(-2, 10), max_size=5),
    st.one_of(st.none(), st.lists(st.integers(0, 1), max_size=8)),
    st.one_of(st.none(), st.lists(st.integers(-1, 9), max_size=5)),
    st.integers(0, 3),
)
def test_no_input_makes_the_core_panic(values, offsets, mask, lengths, vocab):
    from rlhf_diag import _core

    v = np.array(values, dtype=np.float64)
    o = np.array(offsets, dtype=np.int64)
    m = None if mask is None else np.array(mask, dtype=np.uint8)
    n = None if lengths is None else np.array(lengths, dtype=np.int64)
    calls = [
        lambda: _core.kl_reduce(v, v[::-1].copy(), o, mask=m, lengths=n),
        lambda: _core.kl_token_values(v, v, o, "k3", mask=m, lengths=n, clamp=(0, 1)),
        lambda: _core.kl_full(v, v, vocab, o, mask=m, lengths=n),
    ]
    for call in calls:
        try:
            call()
        except InputError:
            pass


def test_sequences_without_selected_tokens_are_named(tmp_path, capsys):
    """A sequence whose mask selects nothing has KL sum 0 and counts in the
    mean: a warning names it (from a new user's trial, where it was silent)."""
    df = sk.simulate_rollouts(6, 4, 5, seed=2)
    masks = [[0] * len(m) if i in (1, 4) else list(m) for i, m in enumerate(df["mask"])]
    df = df.with_columns(mask=pl.Series(masks))
    path = sk.write_rollouts(df, tmp_path / "r.jsonl")
    assert main(["kl", str(path)]) == 0
    err = capsys.readouterr().err
    assert "2 of 6 sequences have no selected tokens (sequence 1, 4)" in err
