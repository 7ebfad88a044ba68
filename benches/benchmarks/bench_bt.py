"""Item-level Bradley-Terry from battle arrays, and its bootstrap, against
evalica, FastChat's collapsed-count L-BFGS method and choix's ILSR.

Input: :func:`rlhf_diag.simulate.simulate_battles` (uniform random pairs of
K models, Davidson ties with nu = 0.5, true strengths known). Every method
fits the same model, ties counting half a win to each side (Chatbot Arena's
convention, the one all three peers support), from the same ``uint32`` /
``uint8`` arrays. ``track_`` figures: our largest error against the true
strengths under the Davidson fit, and each peer's largest distance to our
maximum-likelihood estimate (natural-log scale, strengths centred).
"""

from __future__ import annotations

import warnings

import numpy as np
from rlhf_diag import simulate
from rlhf_diag.leaderboard import fit_battle_arrays

from ._common import Big, cached, peer, reset_peak, sizes, source_key
from ._peers import (
    choix_bt,
    evalica_bt,
    evalica_inputs,
    fastchat_bootstrap,
    fastchat_bt,
)

#: "KxN" cases (models x battles): the quick pass runs the smallest only;
#: K = 1000 below 1e6 battles is left out (a few battles per pair).
CASES = sizes(
    ["100x100000"],
    ["100x1000000", "100x10000000", "1000x1000000", "1000x10000000"],
)


def case(models_x_battles: str) -> tuple[int, int]:
    k, n = models_x_battles.split("x")
    return int(k), int(n)


def load(n_models: int, n_battles: int):
    """``(model_a, model_b, outcome, theta)`` arrays."""

    def build(folder):
        sim = simulate.simulate_battles(
            n_models, n_battles, tie_model="davidson", nu=0.5, seed=1
        )
        np.savez(
            folder / "battles.npz",
            a=sim.model_a,
            b=sim.model_b,
            outcome=sim.outcome,
            theta=sim.theta,
        )

    key = source_key(simulate)
    with np.load(cached(f"bt-{n_models}x{n_battles}", key, build) / "battles.npz") as f:
        return f["a"], f["b"], f["outcome"], f["theta"]


def ours(a, b, outcome, n_models, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lb = fit_battle_arrays(
            a,
            b,
            outcome,
            models=[str(i) for i in range(n_models)],
            scale="log",
            **kwargs,
        )
    return lb


def centred(theta) -> np.ndarray:
    t = np.asarray(theta, dtype=np.float64)
    return t - t.mean()


class _Battles(Big):
    params = [CASES]
    param_names = ["models_x_battles"]
    smoke = ("20x20000",)

    def setup(self, models_x_battles):
        self.k, n = case(models_x_battles)
        self.a, self.b, self.outcome, self.theta = load(self.k, n)
        self.peer_setup()
        reset_peak()

    def peer_setup(self):
        pass

    def distance_to_ours(self, theta) -> float:
        mle = centred(ours(self.a, self.b, self.outcome, self.k).theta_)
        return float(np.abs(centred(theta) - mle).max())


class ItemBT(_Battles):
    """rlhf_diag: counts collapsed in Rust, Newton to a gradient of 1e-12 N."""

    # Tens of milliseconds a call, so three cold samples (the peers' seconds
    # long fits need no more) would measure first-touch page faults and
    # noise: a warm-up call, then at least 10 samples.
    repeat = (10, 30, 10.0)
    warmup_time = 0.2

    def time_ours(self, models_x_battles):
        ours(self.a, self.b, self.outcome, self.k)

    def time_ours_no_se(self, models_x_battles):
        """Ratings only (``se=False``): what the peers compute; the default
        also inverts the K x K Hessian for standard errors."""
        ours(self.a, self.b, self.outcome, self.k, se=False)

    def peakmem_ours(self, models_x_battles):
        ours(self.a, self.b, self.outcome, self.k)

    def track_ours_error_vs_truth(self, models_x_battles):
        """Davidson fit (the model the data came from) against the truth."""
        lb = ours(self.a, self.b, self.outcome, self.k, ties="davidson")
        return float(np.abs(centred(lb.theta_) - self.theta).max())

    track_ours_error_vs_truth.unit = "log-strength"


class ItemBTEvalica(_Battles):
    """Peer: evalica's Rust Bradley-Terry (winners as a list, built untimed)."""

    def peer_setup(self):
        self.evalica = peer("evalica")
        pandas = peer("pandas")
        self.winners, self.index = evalica_inputs(
            self.evalica, pandas, self.outcome, self.k
        )

    def time_evalica(self, models_x_battles):
        evalica_bt(self.evalica, self.a, self.b, self.winners, self.index)

    def track_evalica_distance_to_ours(self, models_x_battles):
        theta = evalica_bt(self.evalica, self.a, self.b, self.winners, self.index)
        return self.distance_to_ours(theta)

    track_evalica_distance_to_ours.unit = "log-strength"


class ItemBTFastChat(_Battles):
    """Peer: FastChat's method (np.unique collapse, weighted loss, L-BFGS-B)."""

    def time_fastchat(self, models_x_battles):
        fastchat_bt(self.a, self.b, self.outcome, self.k)

    def track_fastchat_distance_to_ours(self, models_x_battles):
        return self.distance_to_ours(fastchat_bt(self.a, self.b, self.outcome, self.k))

    track_fastchat_distance_to_ours.unit = "log-strength"


class ItemBTChoix(_Battles):
    """Peer: choix's ILSR on the dense win matrix (built inside the timing)."""

    def peer_setup(self):
        self.choix = peer("choix")

    def time_choix(self, models_x_battles):
        choix_bt(self.choix, self.a, self.b, self.outcome, self.k)

    def track_choix_distance_to_ours(self, models_x_battles):
        return self.distance_to_ours(
            choix_bt(self.choix, self.a, self.b, self.outcome, self.k)
        )

    track_choix_distance_to_ours.unit = "log-strength"


class _Rounds(Big):
    params = [sizes([20], [1000])]
    param_names = ["rounds"]
    smoke = (5,)
    smoke_attrs = {"n_battles": 20_000}
    n_models, n_battles = 100, 1_000_000

    def setup(self, rounds):
        self.a, self.b, self.outcome, _ = load(self.n_models, self.n_battles)
        reset_peak()


class Bootstrap(_Rounds):
    """rlhf_diag's count-space bootstrap, K = 100, N = 1e6, rayon over rounds."""

    def time_ours(self, rounds):
        ours(self.a, self.b, self.outcome, self.n_models, bootstrap=rounds)

    def peakmem_ours(self, rounds):
        ours(self.a, self.b, self.outcome, self.n_models, bootstrap=rounds)


class BootstrapFastChat(_Rounds):
    """Peer: FastChat's multinomial bootstrap over the unique rows, one
    L-BFGS fit per round, rounds split over one forked process per core."""

    def time_fastchat(self, rounds):
        fastchat_bootstrap(self.a, self.b, self.outcome, self.n_models, rounds)
