"""Tests of rlhf_diag.features: the Rust text engine against the slow reference."""

from __future__ import annotations

import gzip
import io

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rlhf_diag import _core, _reference
from rlhf_diag._arrow import string_buffers
from rlhf_diag._reference import polars_features, reference_features
from rlhf_diag.exceptions import InputError
from rlhf_diag.features import (
    APOLOGY_PHRASES,
    FEATURES,
    REFUSAL_PHRASES,
    text_features,
)


def rust_rows(texts) -> list[dict[str, int]]:
    return text_features(texts).to_dicts()


def reference_rows(texts) -> list[dict[str, int]]:
    return [reference_features(t) for t in texts]


# One hand case per feature: (feature, text, expected count).
HAND_CASES = [
    ("chars", "héllo\n👍🏽", 8),
    ("chars", "a\r\nb", 4),
    ("words", "  two\twords\u00a0here\u3000x", 4),
    ("words", "a\x1cb\x1fc", 1),  # U+001C..U+001F are not White_Space
    ("headers", "# a\n   ## b\n    # c\n####### d\n#e\n###\n###### f\r\n", 4),
    ("ordered_items", "1. a\n  12) b\n1234567890. c\n1.d\n1. \n\t3.\tx\n٣. y", 3),
    ("unordered_items", "- a\n * b\n+\tc\n-a\n- \n- - -\n* * *\n    - - -\n_ x", 4),
    ("bold", "**a** and **b c** ** d** __e__ __f", 3),
    ("bold", "*****", 1),
    ("bold", "**a**b**", 1),
    ("bold", "***a**", 1),
    ("bold", "**a\n**", 0),
    ("code_blocks", "```py\n# no\n````\n~~~~\n~~~\n```\n~~~~ \n```", 3),
    ("headers", "```py\n# no\n````\n# yes\n~~~~\n# no\n~~~~\n## yes\n```\n# no", 2),
    ("table_rows", "| a | b |\n|---|:-:|\n  |x|  \n|\n||\n| - |\n|: :|", 4),
    ("links", "[a](http://x.y) and https://z HTTP://q", 2),
    ("links", "[a] (b) [c](d e) [[f](g) [x](https://a)https://b", 3),
    ("emojis", "hi 😀👍🏽☀✂ 👨\u200d👩\u200d👧 🇫🇷 ©", 7),
    ("apologies", "Sorry, SORRY! unsorry sorry2 _sorry_ apologise; Apologies", 5),
    ("apologies", "\u017forry ésorry", 1),  # long s does not fold to s
    ("refusals", "I can\u2019t. i CANNOT. hi can't. As an AI, I must decline.", 4),
    ("refusals", "as an aim; I'm unable to; i am not comfortable", 2),
]


@pytest.mark.parametrize(("feature", "text", "expected"), HAND_CASES)
def test_hand_cases(feature, text, expected):
    assert rust_rows([text])[0][feature] == expected
    assert reference_features(text)[feature] == expected


def test_schema_and_constants():
    frame = text_features(["a", "b c"])
    assert frame.columns == list(FEATURES) == list(_reference.FEATURES)
    assert all(dtype == pl.UInt32 for dtype in frame.dtypes)
    assert frame["words"].to_list() == [1, 2]
    assert APOLOGY_PHRASES == _reference.APOLOGY_PHRASES
    assert REFUSAL_PHRASES == _reference.REFUSAL_PHRASES
    assert text_features([]).shape == (0, 12)


# Text built from the pieces the rules react to.
# fmt: off
PIECES = [
    "*", "**", "_", "__", "#", "##", "-", "+", "|", "[", "]", "(", ")", "](",
    "\n", "\r", "\r\n", "`", "```", "~", "~~~", "1", "12.", "3)", ".", ":",
    " ", " ", "\t", "   ", "a", "B", "é", "x y", "http://", "https://",
    "😀", "👍🏽", "🏻", "\u200d", "☀", "🇫", "'", "\u2019", "\u00a0", "\u3000",
    "\x1c", "\x1f", "\u017f", "sorry", "SORRY", "Apologies", "apologizing",
    "i can't", "I can\u2019t", "i cannot", "I won't", "As an AI", "i'm unable to",
    "i am not comfortable", "I don't feel comfortable", "i must decline",
]
# fmt: on
texts_strategy = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts_strategy, min_size=1, max_size=8))
def test_rust_agrees_with_reference(texts):
    assert rust_rows(texts) == reference_rows(texts)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=8))
def test_rust_agrees_with_reference_on_any_unicode(texts):
    assert rust_rows(texts) == reference_rows(texts)


@pytest.mark.parametrize("pad", ["x", " ", "é"])
def test_block_boundaries(pad):
    # The core reads 64-byte ASCII blocks: slide phrases, words, emojis and
    # multi-byte characters across every block boundary.
    tail = " sorry I can\u2019t\u00a0go 😀 As an AI\u3000x"
    texts = [pad * k + tail + " a" * k for k in range(140)]
    rows = rust_rows(texts)
    assert rows == reference_rows(texts)
    assert {(r["apologies"], r["refusals"], r["emojis"]) for r in rows} == {(1, 2, 1)}


NO_FENCE_PIECES = [p for p in PIECES if "`" not in p and "~" not in p]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(NO_FENCE_PIECES), max_size=40).map("".join),
        min_size=1,
        max_size=8,
    )
)
def test_polars_peer_agrees_without_fences(texts):
    assert polars_features(pl.Series(texts)).to_dicts() == reference_rows(texts)


def test_polars_peer_approximates_code_blocks():
    texts = ["```\n# hidden\n```\n# shown", "~~~\nunclosed"]
    peer = polars_features(pl.Series(texts))
    assert peer["code_blocks"].to_list() == [1, 1]
    # Without the fence state machine the hidden header is counted.
    assert peer["headers"].to_list() == [2, 0]
    assert text_features(texts)["headers"].to_list() == [1, 0]


TEXTS = ["# a", "", "**b** sorry", "| x |", "1. one\n2. two", "😀 https://x", "z"]


@pytest.mark.parametrize(
    "make",
    [
        pl.Series,
        list,
        lambda t: pa.array(t, type=pa.string()),
        lambda t: pa.array(t, type=pa.large_string()),
        lambda t: pa.array(t, type=pa.string_view()),
        lambda t: pa.chunked_array([t[:3], t[3:]], type=pa.string()),
        lambda t: pl.Series(t[:2]).append(pl.Series(t[2:])),
        lambda t: pl.Series(t, dtype=pl.Categorical),
    ],
)
def test_input_kinds_give_the_same_counts(make):
    assert rust_rows(make(TEXTS)) == reference_rows(TEXTS)


def test_sliced_arrow_array_is_read_in_place():
    arr = pa.array(TEXTS, type=pa.large_string()).slice(2, 4)
    assert arr.offset == 2
    offsets, data = string_buffers(arr)
    assert offsets[0] == len("# a")  # not rebased: the core takes the offset
    assert data.ctypes.data == arr.buffers()[2].address  # a view, not a copy
    assert rust_rows(arr) == reference_rows(TEXTS[2:6])


def test_n_jobs():
    texts = TEXTS * 50
    default = text_features(texts)
    assert text_features(texts, n_jobs=1).equals(default)
    assert text_features(texts, n_jobs=2).equals(default)
    assert text_features(texts, n_jobs=-1).equals(default)
    with pytest.raises(InputError, match="n_jobs"):
        text_features(texts, n_jobs=0)
    with pytest.raises(InputError, match="n_jobs"):
        text_features(texts, n_jobs=1.5)


def test_null_rows_are_refused_by_row():
    with pytest.raises(InputError, match=r"2 null value\(s\); the first is row 1"):
        text_features(pl.Series(["a", None, "b", None]))


def test_non_string_inputs_are_refused():
    with pytest.raises(InputError, match="Arrow type int64"):
        text_features(pl.Series([1, 2]))
    with pytest.raises(InputError, match="list of str"):
        text_features(["a", 3])
    with pytest.raises(InputError, match="got str"):
        text_features("one string")


def _raw(offsets, data):
    return _core.text_features(
        np.asarray(offsets, dtype=np.int64), np.frombuffer(data, dtype=np.uint8)
    )


def test_raw_binding_validates_offsets_and_utf8():
    data = b"abcdef"
    assert _raw([0, 3, 6], data)[:, 0].tolist() == [3, 3]
    assert _raw([2, 4], data)[0, 0] == 2
    with pytest.raises(InputError, match="row 1 ends at 2, before its start 3"):
        _raw([0, 3, 2], data)
    with pytest.raises(InputError, match="row 0 starts at -1"):
        _raw([-1, 2], data)
    with pytest.raises(InputError, match="row 1 ends at 9, past the end"):
        _raw([0, 1, 9], data)
    with pytest.raises(InputError, match="row 2: invalid UTF-8"):
        _raw([0, 1, 2, 4], b"ab\xc3(")
    assert _raw([], data).shape == (0, 12)


@pytest.mark.data
def test_real_dialogues_agree_with_reference(shared_data):
    path = shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz"
    raw = gzip.decompress(path.read_bytes())
    chosen = pl.read_ndjson(io.BytesIO(raw))["chosen"]
    assert len(chosen) == 2354
    rust = text_features(chosen)
    assert rust.to_dicts() == reference_rows(chosen.to_list())
    # The data have phrases and lists, so the agreement is not all zeros.
    totals = rust.sum().row(0, named=True)
    assert totals["apologies"] > 0
    assert totals["refusals"] > 0
    assert totals["ordered_items"] > 0
