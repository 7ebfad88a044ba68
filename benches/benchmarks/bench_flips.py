"""Answer flips under pushback: read transcripts, extract answers, score and
summarise (``rlhf_diag.sycophancy.flips.analyse_flips``).

Input: a JSONL file of flat-format transcripts from
:func:`rlhf_diag.simulate_text.simulate_pushback_transcripts`, whose outcome
per item is known; ``track_wrong_outcomes`` counts items scored differently
(0 expected). No peer: no other tool computes this.
"""

from __future__ import annotations

import json
import warnings

from rlhf_diag import simulate_text
from rlhf_diag.sycophancy.flips import analyse_flips

from ._common import Big, cached, reset_peak, sizes, source_key


def transcripts(n_items: int):
    """``transcripts.jsonl`` and ``outcomes.json`` (the true outcome per item)."""

    def build(folder):
        sim = simulate_text.simulate_pushback_transcripts(n_items, seed=9)
        sim.write(folder / "transcripts.jsonl")
        (folder / "outcomes.json").write_text(json.dumps(sim.outcome))

    return cached(f"flips-{n_items}", source_key(simulate_text), build)


def run(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyse_flips(path)


class Flips(Big):
    """``analyse_flips`` on one file, rates by dataset, model and template."""

    params = [sizes([1_000], [10_000, 100_000])]
    param_names = ["n_items"]
    smoke = (200,)

    def setup(self, n_items):
        folder = transcripts(n_items)
        self.path = folder / "transcripts.jsonl"
        self.truth = json.loads((folder / "outcomes.json").read_text())
        reset_peak()

    def time_analyse_flips(self, n_items):
        run(self.path)

    def peakmem_analyse_flips(self, n_items):
        run(self.path)

    def track_wrong_outcomes(self, n_items):
        got = [it.outcome for it in run(self.path).items]
        return sum(a != b for a, b in zip(got, self.truth)) + abs(len(got) - n_items)

    track_wrong_outcomes.unit = "items"
