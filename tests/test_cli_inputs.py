"""Defects from a new user's trial of the CLI: each a clear one-line error
(exit 2) or a named warning, never a traceback or a silent wrong answer."""

from __future__ import annotations

import gzip

import polars as pl
import pytest

from rlhf_diag.cli import main


@pytest.fixture()
def corrupt(tmp_path):
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbagegarbage")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b'{"chosen": "a", "rejected": "b"}\n' * 2000)[:200])
    return bad, cut


@pytest.mark.parametrize("command", ["audit", "reward", "winrate", "flips", "kl"])
def test_corrupt_gzip_is_a_named_error(command, corrupt, capsys):
    for path in corrupt:
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"error: {path}: corrupt gzip data"), err


def test_a_named_prompt_column_must_exist(tmp_path, capsys):
    path = tmp_path / "p.parquet"
    pl.DataFrame({"prompt": ["a", "b"], "chosen": ["x", "y"],
                  "rejected": ["z", "w"]}).write_parquet(path)
    assert main(["audit", str(path), "--prompt-col", "nope"]) == 2
    assert "no prompt column 'nope'" in capsys.readouterr().err
    # Without the option the prompt column stays optional.
    pl.DataFrame({"chosen": ["x", "y"], "rejected": ["z", "w"]}).write_parquet(path)
    assert main(["audit", str(path)]) == 0


def test_winrate_options_are_checked_before_the_work(shared_data, tmp_path, capsys):
    model = str(shared_data / "alpaca_eval" / "results" / "claude-2")
    with pytest.raises(SystemExit):
        main(["winrate", model, "--anchor-slope", "inf"])
    assert "expected a finite number" in capsys.readouterr().err
    assert main(["winrate", model, "--no-anchor", "--anchor-slope", "1"]) == 2
    assert "contradict" in capsys.readouterr().err
    table = tmp_path / "t.csv"
    pl.DataFrame({"model": ["x"], "score": [1.0]}).write_csv(table)
    assert main(["winrate", model, "--compare", str(table)]) == 2
    cap = capsys.readouterr()
    assert f"{table}: no column win_rate, n_wins" in cap.err
    assert cap.out == ""  # refused before any table was printed


def test_winrate_warns_when_difficulty_rests_on_few_models(shared_data):
    from rlhf_diag.exceptions import DataQualityWarning
    from rlhf_diag.winrate import read_annotations, win_rates

    frame = read_annotations([shared_data / "alpaca_eval" / "results" / "claude-2"])
    with pytest.warns(DataQualityWarning, match="estimated from 1 model"):
        res = win_rates(frame)
    assert any("estimated from 1 model" in n for n in res.notes)
