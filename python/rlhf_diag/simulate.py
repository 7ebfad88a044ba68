"""Seeded simulators with a known truth, for tests and benchmarks.

Each function draws from numpy's PCG64 generator seeded by ``seed``, so the
same arguments always give the same data, and returns the truth it drew from
next to the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlhf_diag.exceptions import InputError

__all__ = ["SimulatedBattles", "simulate_battles"]


@dataclass(frozen=True)
class SimulatedBattles:
    """Battles drawn from a Bradley-Terry model with known strengths.

    Attributes
    ----------
    model_a, model_b
        ``uint32`` model indices of the two sides (never equal).
    outcome
        ``uint8`` codes: 0 side a wins, 1 side b wins, 2 tie.
    theta
        True natural log-strengths, centred to mean zero.
    models
        Model names, ``model0000``, ``model0001``, ...
    tie_model, nu
        The tie model used and its parameter (Davidson ``nu``, Rao-Kupper
        ``kappa``; ``None`` without ties).
    """

    model_a: np.ndarray
    model_b: np.ndarray
    outcome: np.ndarray
    theta: np.ndarray
    models: list[str]
    tie_model: str
    nu: float | None


def simulate_battles(
    n_models: int,
    n_battles: int,
    *,
    tie_model: str = "davidson",
    nu: float = 0.5,
    sigma: float = 0.5,
    seed: int = 0,
) -> SimulatedBattles:
    """Draw battles between uniformly chosen pairs of models.

    Parameters
    ----------
    n_models
        Number of models ``K`` (at least 2).
    n_battles
        Number of battles ``N``.
    tie_model
        ``"davidson"`` (Davidson 1970: ``P(a) ∝ e^{d/2}``, ``P(b) ∝
        e^{-d/2}``, ``P(tie) ∝ nu``), ``"rao-kupper"`` (Rao & Kupper 1967:
        ``P(a) = σ(d - ln nu)``, ``P(b) = σ(-d - ln nu)``, with ``nu > 1``)
        or ``"none"`` (plain Bradley-Terry, no ties).
    nu
        The tie parameter of ``tie_model``.
    sigma
        Standard deviation of the true strengths, drawn from a normal law and
        centred (0.5 is about 87 Elo).
    seed
        Seed of the generator.

    Returns
    -------
    SimulatedBattles
    """
    if n_models < 2:
        raise InputError(f"n_models = {n_models}: need at least 2 models")
    if n_battles < 0:
        raise InputError(f"n_battles = {n_battles}: expected a count >= 0")
    if tie_model not in ("davidson", "rao-kupper", "none"):
        raise InputError(
            f"tie_model = {tie_model!r}: expected davidson, rao-kupper or none"
        )
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, sigma, n_models)
    theta -= theta.mean()
    a = rng.integers(0, n_models, n_battles, dtype=np.uint32)
    shift = rng.integers(1, n_models, n_battles, dtype=np.uint32)
    b = ((a.astype(np.uint64) + shift) % n_models).astype(np.uint32)
    d = theta[a] - theta[b]
    u = rng.random(n_battles)
    if tie_model == "none":
        p_a, p_b = 1.0 / (1.0 + np.exp(-d)), None
    elif tie_model == "davidson":
        if not nu > 0:
            raise InputError(f"nu = {nu}: the Davidson tie parameter must be > 0")
        ea, eb = np.exp(0.5 * d), np.exp(-0.5 * d)
        z = ea + eb + nu
        p_a, p_b = ea / z, eb / z
    else:
        if not nu > 1:
            raise InputError(f"nu = {nu}: the Rao-Kupper parameter must be > 1")
        eta = np.log(nu)
        p_a, p_b = 1.0 / (1.0 + np.exp(eta - d)), 1.0 / (1.0 + np.exp(eta + d))
    outcome = np.where(u < p_a, 0, 1 if p_b is None else 2).astype(np.uint8)
    if p_b is not None:
        outcome[(u >= p_a) & (u < p_a + p_b)] = 1
    return SimulatedBattles(
        model_a=a,
        model_b=b,
        outcome=outcome,
        theta=theta,
        models=[f"model{i:04d}" for i in range(n_models)],
        tie_model=tie_model,
        nu=None if tie_model == "none" else float(nu),
    )
