"""The formulas of CA-TRIDE (Tian et al., ICML 2024) as its released code computes them.

Pure functions of distance vectors, so the unit tests check each against a hand computation.
Distances are per-triplet L2 distances of L2-normalised embeddings (metric N): ``d_ap[i] =
‖f(a_i) − f(p_i)‖``, ``d_an[i] = ‖f(a_i) − f(n_i)‖``.

What the paper's "collapseness" formula is cannot be read publicly; the code's
"collapse-aware" part is the hinge on c = M_λ(d_ap) − M_λ(d_an) that both inner losses
share, and nothing here goes beyond that.
"""
from __future__ import annotations

import torch

#: the miner's margin at the start of training (the triplet margin of metric N)
MINER_MARGIN = 0.2
#: the released code's extra triplet term: weight and margin
EXTRA_WEIGHT = 0.5
EXTRA_MARGIN = 0.04
#: the released code's λ, set by hand per dataset (it has no value for the 28x28 datasets)
RELEASED_LAMBDA: dict[str, float] = {"cub": 10.0, "cars": 9.5, "sop": 2.0}


def soft_weighted_mean(d: torch.Tensor, lam: float) -> torch.Tensor:
    """M_λ(d) = Σ w_i d_i / Σ w_i with w_i = exp(λ (d_i − max_j d_j)): a soft maximum of ``d``.

    λ → 0 gives the plain mean, λ → ∞ the maximum; subtracting the maximum only keeps
    the exponentials finite (it cancels in the ratio). The weights stay in the graph.
    """
    w = torch.exp(lam * (d - d.max()))
    return (w * d).sum() / w.sum()


def collapse_gap(d_ap: torch.Tensor, d_an: torch.Tensor, lam: float) -> torch.Tensor:
    """c = M_λ(d_ap) − M_λ(d_an): positive once the weighted positives lie beyond the negatives."""
    return soft_weighted_mean(d_ap, lam) - soft_weighted_mean(d_an, lam)


def cap_loss(d_ap: torch.Tensor, d_an: torch.Tensor, lam: float) -> torch.Tensor:
    """CAP (perturbs positive and negative, benign anchor): ReLU(M_λ(d_an) − M_λ(d_ap)), i.e. ReLU(−c).

    Minimising pushes positives away and pulls negatives in until c reaches 0, then stops.
    """
    return torch.relu(-collapse_gap(d_ap, d_an, lam))


def smaller_half_mean(d: torch.Tensor) -> torch.Tensor:
    """Mean of the ⌊B/2⌋ smallest entries (of the smallest one when B = 1: a decision, the code divides by 0)."""
    k = max(d.numel() // 2, 1)
    return torch.topk(d, k, largest=False).values.mean()


def anp_loss(d_ap: torch.Tensor, d_an: torch.Tensor, shift: torch.Tensor, lam: float) -> torch.Tensor:
    """ANP (perturbs the anchor only): ReLU(c) + g · ReLU(H_an − D_aa).

    ``d_ap``/``d_an`` are measured from the perturbed anchors, ``shift[i] = ‖f(a′_i) − f(a_i)‖``.
    H_an is the mean of the ⌊B/2⌋ smallest d_an, D_aa the mean shift, and
    g = exp(−ReLU(M_λ(d_an) − M_λ(d_ap))) a constant (no gradient): the anchor-shift term
    is damped while the triplets are still well separated.
    """
    gap = collapse_gap(d_ap, d_an, lam)
    g = torch.exp(-torch.relu(-gap)).detach()
    return torch.relu(gap) + g * torch.relu(smaller_half_mean(d_an) - shift.mean())


def extra_triplet_term(d_ap: torch.Tensor, d_an: torch.Tensor) -> torch.Tensor:
    """The released code's addition to its triplet kernel: 0.5 · ReLU(H_ap − H_an + 0.04), H = smaller-half means."""
    return EXTRA_WEIGHT * torch.relu(smaller_half_mean(d_ap) - smaller_half_mean(d_an) + EXTRA_MARGIN)


def epoch_fraction(epoch: int, epochs: int) -> float:
    """e / E with e the 0-based epoch: the released code's progress (0 in the first epoch)."""
    return float(epoch) / float(max(epochs, 1))


def step_fraction(step: int, total_steps: int) -> float:
    """t / T with t the steps done: the same ramp, continuous over the steps of the run."""
    return min(float(step) / float(max(total_steps, 1)), 1.0)


def inner_step_size(alpha: float, fraction: float, decay: bool = True) -> float:
    """The inner PGD step: α · fraction with the decay (α · e/E in the code), else α."""
    return alpha * fraction if decay else alpha


def miner_margin(fraction: float, start: float = MINER_MARGIN) -> float:
    """The gradually-hard miner's margin m_g = m_0 (1 − fraction / 2)²: 0.2 → 0.05 over training."""
    return start * (1.0 - fraction / 2.0) ** 2
