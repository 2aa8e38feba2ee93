"""NES: a black-box estimate of the input gradient from model outputs only (Ilyas et al., ICML 2018).

The reference's ``--nes`` mode replaces the autograd gradient of an attack's
objective by a natural-evolution-strategies estimate from a population of antithetic
Gaussian probes, and steps on its sign::

    g(x) = 1 / (P σ) · Σ_{i=1..P/2} [L(x + u_i) − L(x − u_i)] · u_i,   u_i = clip(σ z_i, −ε, ε)

with P = 100 probes, σ = 2ε, z_i ~ N(0, I) (under ``norm=2`` the clip is the L2 one:
u_i = σ z_i scaled down to ‖u_i‖₂ ≤ ε). For large images (the 224 family) the probes are
drawn at 3x32x32 and nearest-upsampled to the input size (x7 at 224), which shrinks the search
space from 150,528 to 3,072 dimensions. Each probe point is projected onto the attack's feasible
set (the ε-ball of the attack's norm around the clean image, inside [0, 1]) before it is queried,
so no query ever leaves the threat model. The estimate is plugged into :func:`robrank.attacks.pgd.pgd_minimize`
as its ``gradient``; everything else (sign step, projection, random start) is the shared loop.

The probes are a pure function of ``(seed, sample index, step, probe)``
(:func:`robrank.attacks.selection.normal`), so an NES attack gives the same result at any
batch size. A query is one forward pass of one image; the estimate costs P queries per image
and step (:func:`query_count`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import selection
from .pgd import Gradient, l2_norms, project

#: per-sample losses L(x, step) -> [B], evaluated without autograd
Losses = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class NESSettings:
    """The estimator's constants; the defaults are the reference's."""

    population: int = 100  # probes per estimate, antithetic pairs (even)
    sigma_scale: float = 2.0  # σ = sigma_scale · ε
    step: float = 3.0 / 255.0  # sign-step size of the NES iterations
    extra_iterations: int = 1  # iterations = pgditer + extra_iterations
    low_res: int = 32  # probes of images larger than ``low_res_above`` are drawn at low_res x low_res
    low_res_above: int = 64

    def iterations(self, pgditer: int) -> int:
        return int(pgditer) + self.extra_iterations

    def sigma(self, eps: float) -> float:
        return self.sigma_scale * float(eps)


REFERENCE = NESSettings()


def query_count(pgditer: int, settings: NESSettings = REFERENCE) -> int:
    """Forward passes per attacked image spent on the estimates (clean and final evaluation excluded)."""
    return settings.population * settings.iterations(pgditer)


def probe_shape(image_shape: tuple[int, ...], settings: NESSettings = REFERENCE) -> tuple[int, ...]:
    """Per-image shape the probes are drawn in: the image's own, or C x low_res x low_res for large images."""
    channels, height, width = image_shape[-3:] if len(image_shape) >= 3 else (1, 1, image_shape[-1])
    if max(height, width) > settings.low_res_above:
        return (channels, settings.low_res, settings.low_res)
    return tuple(image_shape)


def nes_gradient(
    losses: Losses,
    x0: torch.Tensor,
    *,
    eps: float,
    seed: int,
    index: torch.Tensor,
    settings: NESSettings = REFERENCE,
    norm: float = math.inf,
) -> Gradient:
    """A ``gradient(x, step)`` for :func:`~robrank.attacks.pgd.pgd_minimize` that estimates by NES.

    ``losses(x, step)`` returns the per-sample objective ``[B]`` (each sample's value depends
    on that sample only); ``x0`` are the clean images, ``index`` their global dataset indices
    (they seed the probes). The returned value is the population's mean loss, summed over the
    batch (for logs; it costs no extra query). ``norm`` is the threat model (``math.inf`` or
    2.0): every probe point lies in that ball of radius ``eps`` around ``x0``, inside [0, 1].
    """
    if settings.population < 2 or settings.population % 2:
        raise ValueError(f"NES population must be an even number >= 2 (got {settings.population})")
    x0 = x0.detach()
    sigma = settings.sigma(eps)
    low, high = (x0 - eps).clamp(min=0.0), (x0 + eps).clamp(max=1.0)
    batch = x0.shape[0]
    image_shape = tuple(x0.shape[1:])
    shape = probe_shape(image_shape, settings)
    numel = 1
    for size in shape:
        numel *= int(size)
    pairs = settings.population // 2
    index = index.to(device=x0.device, dtype=torch.int64).view(-1)

    def probe(step: int, pair: int) -> torch.Tensor:
        offset = (step * pairs + pair) * numel
        z = selection.normal(seed, selection.STREAM_NES, index, numel, offset).to(device=x0.device, dtype=x0.dtype)
        z = z.view(batch, *shape)
        if tuple(shape) != image_shape:
            z = F.interpolate(z, size=image_shape[-2:], mode="nearest")
        u = sigma * z
        if norm == math.inf:
            return u.clamp_(-eps, eps)
        return u * (eps / l2_norms(u).clamp_min(1e-12)).clamp(max=1.0)

    def inside(x: torch.Tensor) -> torch.Tensor:
        if norm == math.inf:
            return torch.minimum(torch.maximum(x, low), high)
        return project(x, x0, eps, norm)

    def gradient(x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach()
        grad = torch.zeros_like(x)
        total = torch.zeros((), device=x.device, dtype=torch.float64)
        with torch.no_grad():
            for pair in range(pairs):
                u = probe(step, pair)
                plus = losses(inside(x + u), step)
                minus = losses(inside(x - u), step)
                weight = (plus - minus).to(x.dtype).view(batch, *([1] * (x.dim() - 1)))
                grad.add_(weight * u)
                total += (plus.sum() + minus.sum()).to(torch.float64)
        grad.div_(settings.population * sigma)
        return total / settings.population, grad

    return gradient


__all__ = ["NESSettings", "REFERENCE", "nes_gradient", "probe_shape", "query_count"]
