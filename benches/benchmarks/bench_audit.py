"""The whole audit, file to result, on simulated preference pairs.

Input: a Parquet ``pairs`` file from
:func:`rlhf_diag.simulate_text.simulate_preference_texts` (the chosen side
drawn from a Bradley-Terry model on style with known weights). The timed
body is what ``rlhf-diag audit FILE`` does without rendering: read, normalise,
two text passes, bias statistics, quality checks, the style-only fit and its
5-fold cross-validation. ``track_style_max_abs_error`` records how far the
style fit lands from the truth it was drawn from.
"""

from __future__ import annotations

import json
import warnings

from rlhf_diag import simulate_text
from rlhf_diag.audit import audit

from ._common import Big, cached, reset_peak, sizes, source_key


def pairs_folder(n_pairs: int):
    """``pairs.parquet`` and ``truth.json`` (the style fit's true coefficients)."""

    def build(folder):
        sim = simulate_text.simulate_preference_texts(n_pairs, seed=11)
        sim.write(folder / "pairs.parquet")
        (folder / "truth.json").write_text(json.dumps(sim.style_truth()))

    return cached(f"pairs-{n_pairs}", source_key(simulate_text), build)


def run_audit(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return audit(path)


class Audit(Big):
    """``rlhf_diag.audit`` end to end (about 1.1 KB per response)."""

    params = [sizes([10_000], [100_000, 500_000])]
    param_names = ["n_pairs"]
    smoke = (500,)

    def setup(self, n_pairs):
        folder = pairs_folder(n_pairs)
        self.path = folder / "pairs.parquet"
        self.truth = json.loads((folder / "truth.json").read_text())
        reset_peak()

    def time_audit(self, n_pairs):
        run_audit(self.path)

    def peakmem_audit(self, n_pairs):
        run_audit(self.path)

    def track_style_max_abs_error(self, n_pairs):
        fit = run_audit(self.path).style_fit
        return max(
            abs(c["coef"] - self.truth[c["feature"]]) for c in fit["coefficients"]
        )

    track_style_max_abs_error.unit = "coef"
