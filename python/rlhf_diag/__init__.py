"""rlhf_diag: audit RLHF preference data on a Rust core.

The main entry points, importable from the package itself::

    from rlhf_diag.audit import audit
    res = audit("pairs.jsonl")                 # an AuditResult
    print(res.summary())

(``rlhf_diag.audit`` is the module; the function of the same name lives in
it, so that ``import rlhf_diag.audit`` always means the module.)

Submodules by domain: ``pairs`` (reading preference files), ``features``
(the Rust text pass), ``audit``, ``logistic`` (Bradley-Terry on feature
differences), ``leaderboard`` (item Bradley-Terry), ``winrate``
(AlpacaEval), ``kl``, ``sycophancy``, ``report``, ``simulate``.
"""

from __future__ import annotations

import importlib

from rlhf_diag._core import __version__

# Public name -> module that defines it. Imported on first use, so that
# `import rlhf_diag` stays cheap and optional dependencies load only when used.
_EXPORTS = {
    "AuditResult": "rlhf_diag.audit",
    "load_pairs": "rlhf_diag.pairs",
    "PairSet": "rlhf_diag.pairs",
    "text_features": "rlhf_diag.features",
    "fit_logistic": "rlhf_diag.logistic",
    "cross_validate_logistic": "rlhf_diag.logistic",
    "estimate_kl": "rlhf_diag.kl",
    "analyse_flips": "rlhf_diag.sycophancy",
    "write_report": "rlhf_diag.report",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rlhf_diag' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(__all__)
