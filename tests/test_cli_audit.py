"""`rlhf-diag audit` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from rlhf_diag.cli import main


def test_audit_cli_json_keys(shared_data, tmp_path, capsys):
    out = tmp_path / "a.json"
    rc = main(["audit", str(shared_data / "hh-rlhf" / "helpful-base" / "test.jsonl.gz"),
               "--json", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    for key in ("n_rows_read", "n_pairs", "skipped", "identical_pairs", "length",
                "features", "quality", "style_fit", "length_ratio_bins"):
        assert key in d
    for unit in ("chars", "words"):
        for key in ("chosen_longer", "chosen_shorter", "equal", "frac_chosen_longer",
                    "wilson95", "binomial_p", "mean_diff"):
            assert key in d["length"][unit]
    assert (d["n_pairs"], d["identical_pairs"]) == (2354, 2)
    text = capsys.readouterr().out
    assert "chars" in text and "1399" in text and "Style-only" in text


def test_audit_cli_errors_name_file_and_column(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    p = tmp_path / "p.csv"
    pl.DataFrame({"prompt": ["a"], "good": ["x"], "rejected": ["y"]}).write_csv(p)
    assert main(["audit", str(p), "--format", "pairs"]) == 2
    err = capsys.readouterr().err
    assert "'chosen'" in err and "columns are prompt, good, rejected" in err
    assert main(["audit", str(p), "--chosen-col", "good"]) == 0


def test_console_script_runs(tmp_path):
    p = tmp_path / "p.jsonl"
    pl.DataFrame({"prompt": ["q1", "q2"], "chosen": ["a long answer", "yes"],
                  "rejected": ["no", "a longer answer here"]}).write_ndjson(p)
    res = subprocess.run([sys.executable, "-m", "rlhf_diag.cli", "audit", str(p)],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert "format=pairs" in res.stdout


def test_bad_options_refused_before_work(tmp_path, capsys):
    p = tmp_path / "p.jsonl"
    pl.DataFrame({"chosen": ["a", "bb", "c"], "rejected": ["xx", "y", "zzz"]}).write_ndjson(p)
    for opts in (["--folds", "-3"], ["--folds", "1"], ["--truncate", "0"], ["--truncate", "-5"]):
        with pytest.raises(SystemExit) as exc:
            main(["audit", str(p), *opts])
        assert exc.value.code == 2
        assert opts[0] in capsys.readouterr().err
    assert main(["audit", str(p), "--json", str(tmp_path / "no" / "x.json")]) == 2
    assert "--json" in capsys.readouterr().err


def test_fewer_pairs_than_folds_is_said(tmp_path, capsys):
    p = tmp_path / "p.jsonl"
    pl.DataFrame({"chosen": ["a", "bbbb", "c"], "rejected": ["xx", "y", "zzz"]}).write_ndjson(p)
    out = tmp_path / "a.json"
    assert main(["audit", str(p), "--json", str(out)]) == 0
    assert "warning: style fit: no held-out figures: fewer pairs (3) than folds (5)" in (
        capsys.readouterr().err)
    cv = json.loads(out.read_text())["style_fit"]["cv"]
    assert cv["accuracy"] is None and "fewer pairs" in cv["undefined"]


def test_file_type_option(tmp_path):
    p = tmp_path / "data.txt"
    pl.DataFrame({"chosen": ["a", "bb"], "rejected": ["xx", "y"]}).write_csv(p)
    assert main(["audit", str(p)]) == 2
    assert main(["audit", str(p), "--file-type", "csv"]) == 0
