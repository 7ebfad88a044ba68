"""The package's top-level API."""

from __future__ import annotations

import importlib

import polars as pl

import rlhf_diag


def test_exports_resolve():
    for name in rlhf_diag.__all__:
        assert getattr(rlhf_diag, name) is not None


def test_audit_stays_the_function_after_submodule_imports(tmp_path):
    importlib.import_module("rlhf_diag.audit")
    importlib.import_module("rlhf_diag.report")
    p = tmp_path / "p.jsonl"
    pl.DataFrame({"chosen": ["longer answer", "b"], "rejected": ["a", "bb"]}).write_ndjson(p)
    res = rlhf_diag.audit(p)
    assert isinstance(res, rlhf_diag.AuditResult)
    assert res.length["chars"]["chosen_longer"] == 1
    assert res.length["chars"]["chosen_shorter"] == 1
    assert "n_pairs=2" in repr(res)
