"""AlpacaEval win rates with the length-controlled GLM
(``rlhf_diag.winrate.win_rates``), from the normalised annotation frame.

Input: :func:`rlhf_diag.simulate_text.simulate_annotations`, one annotation
per model and instruction (805 instructions, as AlpacaEval 2.0), drawn from
the length-controlled GLM with known coefficients. The timed body is the
whole computation after reading: raw rates, the joint difficulty fit across
models and one GLM per model. ``track_lc_mean_abs_error`` is the mean
absolute distance of the LC win rates to their true values, in percentage
points (a model's LC standard error here is about 1.5 to 2.5 points). No
peer: the issue names none for this path.
"""

from __future__ import annotations

import json
import warnings

import polars as pl
from rlhf_diag import simulate_text
from rlhf_diag.winrate import win_rates

from ._common import Big, cached, reset_peak, sizes, source_key

N_INSTRUCTIONS = 805


def annotations(n_models: int):
    """``annotations.parquet`` and ``lc.json`` (true LC win rate per model)."""

    def build(folder):
        sim = simulate_text.simulate_annotations(n_models, N_INSTRUCTIONS, seed=13)
        sim.frame.write_parquet(folder / "annotations.parquet")
        (folder / "lc.json").write_text(json.dumps(sim.lc))

    return cached(f"winrate-{n_models}", source_key(simulate_text), build)


def run(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return win_rates(frame)


class WinRates(Big):
    """Win rates and LC win rates of ``n_models`` models against a baseline."""

    params = [sizes([10], [100, 1000])]
    param_names = ["n_models"]
    smoke = (3,)

    def setup(self, n_models):
        folder = annotations(n_models)
        self.frame = pl.read_parquet(folder / "annotations.parquet")
        self.truth = json.loads((folder / "lc.json").read_text())
        reset_peak()

    def time_win_rates(self, n_models):
        run(self.frame)

    def peakmem_win_rates(self, n_models):
        run(self.frame)

    def track_lc_mean_abs_error(self, n_models):
        models = run(self.frame).models.values()
        errors = [
            abs(m.length_controlled_winrate - self.truth[m.model])
            for m in models
            if m.model in self.truth
        ]
        return sum(errors) / len(errors)

    track_lc_mean_abs_error.unit = "points"
