"""rlhf_diag: audit RLHF preference data on a Rust core.

The main entry points, importable from the package itself::

    import rlhf_diag
    res = rlhf_diag.audit("pairs.jsonl")       # AuditResult
    print(res.summary())

Submodules by domain: ``pairs`` (reading preference files), ``features``
(the Rust text pass), ``audit``, ``logistic`` (Bradley-Terry on feature
differences), ``leaderboard`` (item Bradley-Terry), ``winrate``
(AlpacaEval), ``kl``, ``sycophancy``, ``report``, ``simulate``.
"""

from __future__ import annotations

import importlib

from rlhf_diag._core import __version__

# Imported eagerly: the function `audit` shares its name with its module, and
# binding it here, after the module is loaded, keeps `rlhf_diag.audit` the
# function however the submodule is imported later.
from rlhf_diag.audit import AuditResult, audit

# Public name -> module that defines it. Imported on first use, so that
# `import rlhf_diag` stays cheap and optional dependencies load only when used.
_EXPORTS = {
    "load_pairs": "rlhf_diag.pairs",
    "PairSet": "rlhf_diag.pairs",
    "text_features": "rlhf_diag.features",
    "fit_logistic": "rlhf_diag.logistic",
    "cross_validate_logistic": "rlhf_diag.logistic",
    "estimate_kl": "rlhf_diag.kl",
    "analyse_flips": "rlhf_diag.sycophancy",
    "write_report": "rlhf_diag.report",
}

__all__ = ["__version__", "audit", "AuditResult", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rlhf_diag' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(__all__)
