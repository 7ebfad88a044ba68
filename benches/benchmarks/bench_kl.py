"""KL estimators over a padded batch of token log-probs, against numpy,
torch (CPU) and a plain read of the same arrays.

Input: Schulman's Gaussian example from
:func:`rlhf_diag.simulate_kl.gaussian_logprobs` (x ~ N(0, 1) = the policy,
reference N(mu, 1), so KL = mu^2 / 2 per token exactly), laid out as
``(n_tokens / 1000, 1000)`` float64 arrays with a padding mask (lengths
uniform in 250..1000). Every method returns the per-sequence sums of k1, k2,
k3 and |log r|, the selected-token counts and both log-prob sums.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from rlhf_diag import simulate_kl
from rlhf_diag.kl import estimate_kl

from ._common import Big, cached, peer, reset_peak, sizes, source_key
from ._peers import numpy_kl, plain_read, torch_kl

MU = 0.3
WIDTH = 1000


def load(n_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(policy, reference, mask)``: two float64 ``(n, WIDTH)`` arrays and a
    boolean mask."""

    def build(folder):
        n_seqs = n_tokens // WIDTH
        policy, ref = simulate_kl.gaussian_logprobs(n_seqs * WIDTH, MU, seed=3)
        np.save(folder / "policy.npy", policy.reshape(n_seqs, WIDTH))
        del policy
        np.save(folder / "ref.npy", ref.reshape(n_seqs, WIDTH))
        del ref
        lengths = np.random.default_rng(4).integers(WIDTH // 4, WIDTH + 1, n_seqs)
        np.save(folder / "mask.npy", np.arange(WIDTH)[None, :] < lengths[:, None])

    folder = cached(f"kl-{n_tokens}", source_key(simulate_kl), build)
    return tuple(np.load(folder / f"{n}.npy") for n in ("policy", "ref", "mask"))


def ours(policy, ref, mask):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimate_kl(policy, ref, mask=mask)


class KL(Big):
    """rlhf_diag: one pass, all estimators, GIL released, rayon over rows."""

    params = [sizes([1_000_000], [10_000_000, 100_000_000])]
    param_names = ["n_tokens"]
    smoke = (20_000,)

    def setup(self, n_tokens):
        self.policy, self.ref, self.mask = load(n_tokens)
        reset_peak()

    def time_ours(self, n_tokens):
        ours(self.policy, self.ref, self.mask)

    def peakmem_ours(self, n_tokens):
        ours(self.policy, self.ref, self.mask)

    def time_plain_read(self, n_tokens):
        plain_read(self.policy, self.ref, self.mask)

    def track_k3_relative_error(self, n_tokens):
        """|per-token k3 - KL| / KL, KL = mu^2 / 2 (Monte-Carlo error only)."""
        kl = MU * MU / 2
        return abs(ours(self.policy, self.ref, self.mask).token_mean("k3") - kl) / kl

    track_k3_relative_error.unit = "relative"


def _max_relative_gap(est, other: dict) -> float:
    gaps = []
    for name in ("k1", "k2", "k3", "abs"):
        a = np.asarray(est.sums[name])
        b = np.asarray(other[name], dtype=np.float64)
        gaps.append(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))
    return float(max(gaps))


class KLNumpy(Big):
    """Peer: numpy array expressions (``np.where`` on the mask)."""

    params = [sizes([1_000_000], [10_000_000, 100_000_000])]
    param_names = ["n_tokens"]
    smoke = (20_000,)

    def setup(self, n_tokens):
        self.policy, self.ref, self.mask = load(n_tokens)
        reset_peak()

    def time_numpy(self, n_tokens):
        numpy_kl(self.policy, self.ref, self.mask)

    def peakmem_numpy(self, n_tokens):
        numpy_kl(self.policy, self.ref, self.mask)

    def track_numpy_gap_to_ours(self, n_tokens):
        """Largest relative difference of the per-sequence sums (rounding)."""
        other = numpy_kl(self.policy, self.ref, self.mask)
        return _max_relative_gap(ours(self.policy, self.ref, self.mask), other)

    track_numpy_gap_to_ours.unit = "relative"


class KLTorch(Big):
    """Peer: torch CPU tensors on the same memory, one thread per core."""

    params = [sizes([1_000_000], [10_000_000, 100_000_000])]
    param_names = ["n_tokens"]
    smoke = (20_000,)

    def setup(self, n_tokens):
        self.torch = peer("torch")
        self.torch.set_num_threads(os.cpu_count() or 1)
        self.policy, self.ref, self.mask = load(n_tokens)
        reset_peak()

    def time_torch(self, n_tokens):
        torch_kl(self.torch, self.policy, self.ref, self.mask)

    def peakmem_torch(self, n_tokens):
        torch_kl(self.torch, self.policy, self.ref, self.mask)

    def track_torch_gap_to_ours(self, n_tokens):
        other = {
            k: v.numpy()
            for k, v in torch_kl(self.torch, self.policy, self.ref, self.mask).items()
        }
        return _max_relative_gap(ours(self.policy, self.ref, self.mask), other)

    track_torch_gap_to_ours.unit = "relative"
