"""Privacy accounting of DP-SGD (``medgan.training.privacy``): the epsilon a history of noisy steps spends, the
noise multiplier that keeps a step budget within a target epsilon, and the automatic delta. Torch-free; Opacus's
RDP accountant does the arithmetic (imported at first use: it takes seconds to load)."""

from __future__ import annotations

import warnings

from medgan.config import MAX_EPSILON
from medgan.errors import ConfigError

ACCOUNTANT = "rdp"  # Opacus's Renyi-DP accountant of the Poisson-subsampled Gaussian mechanism
AUTO_DELTA_FLOOR = 1e-5  # automatic delta: min(1e-5, 1 / (10 * units)), well below 1 / units
MAX_SIGMA = 1e6  # the largest noise multiplier the solve tries (Opacus's bound)
EPSILON_TOLERANCE = 0.01  # the noise solve stops when epsilon is this close below the target (Opacus's default)
SOLVE_ITERATIONS = 40  # bisection steps of the noise solve at most: sigma to 20 / 2**40, far finer than needed


def automatic_delta(units: int) -> float:
    """delta = min(1e-5, 1 / (10 * units)): well below 1 / units, the chance of one unit's full exposure."""
    return min(AUTO_DELTA_FLOOR, 1.0 / (10.0 * units))


def epsilon_spent(history: list[tuple[float, float, int]], delta: float) -> float:
    """Epsilon by Opacus's RDP accountant for a history of ``(noise multiplier, sample rate, steps)`` runs of the
    Poisson-subsampled Gaussian mechanism (0 before any step)."""
    if sum(steps for _, _, steps in history) <= 0:
        return 0.0
    from opacus.accountants import RDPAccountant  # opacus is imported only by DP runs: it takes seconds to load

    accountant = RDPAccountant()
    accountant.history = list(history)
    with warnings.catch_warnings():
        # Where the best RDP order is the smallest or largest Opacus tries (little or much noise), it warns that the
        # bound could be tighter: the epsilon is still a valid (conservative) bound, and the warning is noise on
        # the command line (epsilon and its parameters are in the log and the checkpoint).
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return float(accountant.get_epsilon(delta))


def solve_noise(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The noise multiplier that spends at most ``target_epsilon`` in ``steps`` steps.

    Opacus's search (``get_noise_multiplier``: sigma doubles from 20 until epsilon falls below the target, then
    bisection until epsilon is within 0.01 below it, the same sigma), with a bound it lacks: the bisection stops
    after ``SOLVE_ITERATIONS`` with the last sigma within the target. Without it a large target never returned
    (near epsilon 1e30 the float spacing of epsilon alone is far above 0.01); targets above ``MAX_EPSILON`` are
    refused.
    """
    if not 0.0 < target_epsilon <= MAX_EPSILON:
        raise ConfigError(f"privacy: privacy.epsilon must be in (0, {MAX_EPSILON:g}], got {target_epsilon:g}")
    low, high, spent = 0.0, 10.0, float("inf")
    while spent > target_epsilon:
        high *= 2
        if high > MAX_SIGMA:
            raise ConfigError(f"privacy: cannot reach epsilon {target_epsilon:g} in {steps} steps (the noise would "
                              f"exceed {MAX_SIGMA:g} times the clipping bound)")
        spent = epsilon_spent([(high, sample_rate, steps)], delta)
    for _ in range(SOLVE_ITERATIONS):
        if target_epsilon - spent <= EPSILON_TOLERANCE:
            break
        sigma = (low + high) / 2
        epsilon = epsilon_spent([(sigma, sample_rate, steps)], delta)
        if epsilon < target_epsilon:
            high, spent = sigma, epsilon
        else:
            low = sigma
    return high
