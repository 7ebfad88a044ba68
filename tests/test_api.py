"""The package's top-level API."""

from __future__ import annotations

import importlib

import polars as pl
import pytest

import rlhf_diag
from rlhf_diag.exceptions import SeparationWarning


def test_exports_resolve():
    for name in rlhf_diag.__all__:
        assert getattr(rlhf_diag, name) is not None


def test_audit_module_and_function(tmp_path):
    import rlhf_diag.audit as module
    from rlhf_diag.audit import audit

    assert module is importlib.import_module("rlhf_diag.audit")
    p = tmp_path / "p.jsonl"
    pl.DataFrame({"chosen": ["longer answer", "b"], "rejected": ["a", "bb"]}).write_ndjson(p)
    with pytest.warns(SeparationWarning):  # two pairs separate along chars, words
        res = audit(p)
    assert isinstance(res, rlhf_diag.AuditResult)
    assert res.length["chars"]["chosen_longer"] == 1
    assert res.length["chars"]["chosen_shorter"] == 1
    assert "n_pairs=2" in repr(res)


def test_z95_constant_is_scipys_normal_quantile():
    from scipy.stats import norm

    from rlhf_diag.stats import Z95

    assert Z95 == float(norm.ppf(0.975))
