"""Loading and normalising preference files (rlhf_diag.pairs)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import polars as pl
import pytest

from rlhf_diag.exceptions import DataFormatError, InputError
from rlhf_diag.pairs import load_pairs


def write_jsonl(path, rows, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def naive_split(t: str) -> tuple[str, str]:
    i = t.rindex("\n\nAssistant:") + len("\n\nAssistant:")
    return t[:i], t[i:].strip()


def test_two_turn_dialogue_prompt_runs_through_second_marker(tmp_path):
    prompt = ("\n\nHuman: Name a fruit.\n\nAssistant: Apple.\n\nHuman: Another?"
              "\n\nAssistant:")
    p = write_jsonl(tmp_path / "hh.jsonl", [
        {"chosen": prompt + " Banana.", "rejected": prompt + " No."}])
    ps = load_pairs(p)
    assert ps.format == "hh"
    row = ps.frame.row(0, named=True)
    assert row["prompt"] == prompt
    assert (row["chosen"], row["rejected"]) == ("Banana.", "No.")
    # The known bug: splitting at the first marker puts a whole turn in the reply.
    first = prompt.index("\n\nAssistant:") + len("\n\nAssistant:")
    assert prompt[:first] != row["prompt"]


def test_marker_inside_final_reply_does_not_move_split(tmp_path):
    prompt = "\n\nHuman: Write a dialogue.\n\nAssistant:"
    chosen = prompt + " Sure.\n\nHuman: hi\n\nAssistant: hello"
    rejected = prompt + " No."
    ps = load_pairs(write_jsonl(tmp_path / "hh.jsonl",
                                [{"chosen": chosen, "rejected": rejected}]), "hh")
    row = ps.frame.row(0, named=True)
    assert row["prompt"] == prompt
    assert row["chosen"] == "Sure.\n\nHuman: hi\n\nAssistant: hello"
    assert naive_split(chosen)[0] != prompt
    assert ps.notes["hh_naive_missplits"] == 1


def test_hh_rows_without_shared_marker_are_counted(tmp_path):
    rows = [{"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: a\n\nAssistant: y"},
            {"chosen": "\n\nHuman: b", "rejected": "\n\nHuman: c"},
            {"chosen": None, "rejected": "\n\nHuman: c"}]
    ps = load_pairs(write_jsonl(tmp_path / "hh.jsonl", rows), "hh")
    assert ps.n_rows_read == 3 and ps.n_pairs == 1
    assert ps.skipped.to_dict() == {"no assistant marker in the shared prefix": 1,
                                    "null chosen": 1}
    assert ps.skipped.examples["null chosen"] == [2]


def test_schema_from_whole_file_keeps_late_key(tmp_path):
    rows = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(150)]
    for i in range(120, 150):
        rows[i]["annotator_id"] = f"a{i}"
    ps = load_pairs(write_jsonl(tmp_path / "p.jsonl.gz", rows, gz=True))
    assert ps.format == "pairs"
    assert "annotator_id" in ps.frame.columns
    assert ps.frame["annotator_id"].drop_nulls().len() == 30
    assert ps.frame["annotator_id"][120] == "a120"


def test_messages_string_and_parts_give_same_text(tmp_path):
    rows = [
        {"chosen": [{"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello there"}],
         "rejected": [{"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Go away"}]},
        {"chosen": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "Hello there"}]}],
         "rejected": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                      {"role": "assistant", "content": "Go away"}]},
    ]
    ps = load_pairs(write_jsonl(tmp_path / "m.jsonl", rows))
    assert ps.format == "messages"
    a, b = ps.frame.rows(named=True)
    assert (a["prompt"], a["chosen"], a["rejected"]) == (b["prompt"], b["chosen"], b["rejected"])
    assert a["chosen"] == "Hello there" and a["prompt"] == "user: Hi"


def test_messages_explicit_prompt_column(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": "2+2?"}],
             "chosen": [{"role": "assistant", "content": "4"}],
             "rejected": [{"role": "assistant", "content": "5"}]}]
    ps = load_pairs(write_jsonl(tmp_path / "m.jsonl", rows), "messages")
    assert ps.frame.row(0, named=True)["chosen"] == "4"
    assert ps.frame.row(0, named=True)["prompt"] == "user: 2+2?"


def test_messages_null_content_names_row_and_path(tmp_path):
    rows = [{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
             "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "No"}]},
            {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}],
             "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "No"}]}]
    with pytest.raises(InputError, match=r"row 1: chosen\[1\]\.content is null"):
        load_pairs(write_jsonl(tmp_path / "m.jsonl", rows))


def test_pairs_column_overrides_and_missing_column(tmp_path):
    p = tmp_path / "x.csv"
    pl.DataFrame({"q": ["a", "b"], "good": ["x", "y"], "bad": ["z", None]}).write_csv(p)
    ps = load_pairs(p, prompt_col="q", chosen_col="good", rejected_col="bad")
    assert ps.frame.columns[:4] == ["row", "prompt", "chosen", "rejected"]
    assert ps.n_pairs == 1 and ps.skipped.to_dict() == {"null bad": 1}
    with pytest.raises(InputError, match="'rejected'.*columns are q, good, bad"):
        load_pairs(p, chosen_col="good")


def test_parquet_and_unreadable_files(tmp_path):
    p = tmp_path / "x.parquet"
    pl.DataFrame({"prompt": ["a"], "chosen": ["x"], "rejected": ["y"]}).write_parquet(p)
    assert load_pairs(p).n_pairs == 1
    with pytest.raises(DataFormatError, match="nope.jsonl: no such file"):
        load_pairs(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(DataFormatError, match="bad.jsonl"):
        load_pairs(bad)


def test_alpaca_eval_draws_and_failures_counted(tmp_path):
    rows = [
        {"instruction": "i0", "output_1": "base", "output_2": "model", "preference": 1.9},
        {"instruction": "i1", "output_1": "base", "output_2": "model", "preference": 1.1},
        {"instruction": "i2", "output_1": "base", "output_2": "model", "preference": 1.5},
        {"instruction": "i3", "output_1": "base", "output_2": "model", "preference": 0},
        {"instruction": "i4", "output_1": "base", "output_2": "model", "preference": None},
    ]
    p = tmp_path / "annotations.json"
    p.write_text(json.dumps(rows))
    ps = load_pairs(p)
    assert ps.format == "alpaca_eval" and ps.n_rows_read == 5 and ps.n_pairs == 2
    assert ps.frame["chosen"].to_list() == ["model", "base"]
    assert ps.frame["chosen_side"].to_list() == [2, 1]
    assert ps.skipped.to_dict() == {"draw (preference 1.5, or 0 in the old encoding)": 2,
                                    "failed annotation (null preference)": 1}


@pytest.mark.parametrize("split,n,missplits,identical", [
    ("helpful-base", 2354, 9, 2), ("harmless-base", 2312, 5, 0),
    ("helpful-online", 1137, 0, 2)])
def test_real_hh_splits(shared_data, split, n, missplits, identical):
    ps = load_pairs(shared_data / "hh-rlhf" / split / "test.jsonl.gz")
    assert ps.format == "hh" and ps.n_pairs == n and not ps.skipped.counts
    assert ps.notes["hh_naive_missplits"] == missplits
    f = ps.frame
    assert int((f["chosen"] == f["rejected"]).sum()) == identical
    # Independent check of the split: the prompt is a prefix of both raw
    # transcripts and ends with the marker.
    raw = pl.read_ndjson(gzip.open(shared_data / "hh-rlhf" / split / "test.jsonl.gz"))
    for i in np.random.default_rng(0).choice(n, 50, replace=False):
        c, r, pr = raw["chosen"][int(i)], raw["rejected"][int(i)], f["prompt"][int(i)]
        assert c.startswith(pr) and r.startswith(pr) and pr.endswith("\n\nAssistant:")
        assert f["chosen"][int(i)] == c[len(pr):].strip()


# ---------------------------------------------------- cases a new user found


def test_text_column_holding_a_number_later_is_refused(tmp_path):
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"} for _ in range(12)]
    rows[10]["chosen"] = 5
    with pytest.raises(InputError, match=r"chosen.*number in row 10"):
        load_pairs(write_jsonl(tmp_path / "p.jsonl", rows))
    rows[10]["chosen"] = ["x"]
    with pytest.raises(InputError, match=r"chosen.*array in row 10"):
        load_pairs(write_jsonl(tmp_path / "p.jsonl", rows))


def test_nan_tokens_and_mixed_types_read_record_by_record(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"chosen": "a", "rejected": "b", "score": NaN}\n'
                 '{"chosen": "c", "rejected": "d", "score": 1.0}\n')
    ps = load_pairs(p)
    assert ps.format == "pairs" and ps.n_pairs == 2
    p.write_text('{"chosen": "a", "rejected": "b", "score": NaN}\n'
                 '{"chosen": 3, "rejected": "d", "score": 1.0}\n')
    with pytest.raises(InputError, match=r"row 1: 'chosen' is a number, but row 0 has text"):
        load_pairs(p)


def test_messages_rows_that_differ_before_the_reply_are_skipped(tmp_path):
    def conv(user, reply):
        return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]

    rows = [{"chosen": conv("q", "good"), "rejected": conv("q", "bad")},
            {"chosen": conv("q", "aaa"), "rejected": conv("DIFFERENT", "b")},
            {"chosen": [{"role": "user", "content": "q"}],
             "rejected": [{"role": "user", "content": "q"}]},
            {"chosen": None, "rejected": conv("q", "b")}]
    ps = load_pairs(write_jsonl(tmp_path / "m.jsonl", rows))
    assert ps.format == "messages" and ps.frame["row"].to_list() == [0]
    assert ps.skipped.to_dict() == {
        "chosen and rejected differ outside the final assistant reply": 2,
        "null chosen": 1}
    assert ps.skipped.examples["chosen and rejected differ outside the final assistant reply"] == [1, 2]


def test_hh_with_windows_line_endings(shared_data, tmp_path):
    raw = pl.read_ndjson(gzip.open(shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz"))
    crlf = raw.head(200).select(pl.all().str.replace_all("\n", "\r\n", literal=True))
    p = tmp_path / "crlf.jsonl"
    crlf.write_ndjson(p)
    ps, ref = load_pairs(p), load_pairs(write_jsonl(tmp_path / "lf.jsonl", raw.head(200).to_dicts()))
    assert ps.format == "hh" and ps.n_pairs == 200 and ps.notes["hh_marker"] == "\r\n\r\nAssistant:"
    assert ps.frame["chosen"].str.replace_all("\r\n", "\n", literal=True).to_list() == ref.frame["chosen"].to_list()


def test_alpaca_eval_preference_must_be_numeric(tmp_path):
    rows = [{"instruction": "i", "output_1": "a", "output_2": "b", "preference": "abc"},
            {"instruction": "i", "output_1": "a", "output_2": "b", "preference": "2"}]
    p = tmp_path / "annotations.json"
    p.write_text(json.dumps(rows))
    with pytest.raises(InputError, match="'preference' must hold numbers"):
        load_pairs(p, "alpaca_eval")


def test_empty_file_is_refused(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    with pytest.raises((InputError, DataFormatError), match="empty.jsonl"):
        load_pairs(p)
