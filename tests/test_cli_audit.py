"""`rlhf-diag audit` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl

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
