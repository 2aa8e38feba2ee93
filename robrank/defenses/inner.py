"""The inner attacks of adversarial training: PGD in pixel space against the model itself.

Every defense of the reference runs the same loop (the reference): model in eval mode,
sign-gradient step of size α (ε when η = 1: FGSM), projection onto the L∞ ball of radius ε
around the clean images, clamp to [0, 1], no random start, last iterate returned. The
reference made the gradient reach the pixels by stepping an SGD optimiser over the images
and zeroing a second optimiser over the weights; here ``torch.autograd.grad`` asks for the
input gradient only, so no weight gradient is ever accumulated and the weights'
``requires_grad`` flags are left exactly as the engine set them. The loop itself is
:func:`robrank.attacks.pgd.pgd_minimize`, the same one the ranking attacks run.
"""
from __future__ import annotations

import torch
from torch import nn

from ..attacks.pgd import pgd_minimize
from ..distances import embed_for_metric, paired
from ..errors import ConfigError
from ..models.modes import eval_mode
from ..semantics import REFERENCE_PAIRWISE_EPS


def pairwise_eps_option(defense: str, value: object) -> float:
    """The ``pairwise_eps`` option of an ES-based defense, as a float (one-line error otherwise)."""
    try:
        eps = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        eps = -1.0
    if not eps >= 0.0:
        raise ConfigError(
            f"defense {defense!r}: pairwise_eps must be a number >= 0 "
            f"({REFERENCE_PAIRWISE_EPS:g} = the reference, 0 = the exact distance), got {value!r}"
        )
    return eps



#: the defenses' inner attacks run the model in eval mode and hand it back as they found it
inner_eval = eval_mode


def embedding_shift(
    model: nn.Module,
    images: torch.Tensor,
    metric: str,
    *,
    eps: float,
    alpha: float,
    steps: int,
    target: torch.Tensor | None = None,
    history: list[float] | None = None,
    pairwise_eps: float = REFERENCE_PAIRWISE_EPS,
) -> torch.Tensor:
    """The ES attack used for training (EST, SES): maximise Σ d(f(x̃), f(x)) for every image.

    ``pairwise_eps`` reproduces ``torch.nn.functional.pairwise_distance``, which the
    reference used for E/N: it measures ‖a − b + eps‖ (eps = 1e-6 there). At the first
    step the difference is only the 1e-7 noise, so that offset dominates the gradient and
    starts *every* image's shift along nearly the same direction (the all-ones vector in
    embedding space), and the later steps keep pushing that way. With 0 (the exact
    distance) each image starts along its own random noise direction. This decides what
    EST learns: on MNIST after 2 epochs, 1e-6 gave mAP 88.7 and ERS 30.3, 0 gave mAP 95.6
    and ERS 71.4 (docs/results.md); the published EST numbers are the 1e-6 behaviour.

    ``target`` is the clean embedding, normalised for the metric (computed here in the
    model's current mode if not given). As in the reference ``embShift``, the first step
    measures against the target plus 1e-7·{−1, 0, 1} noise so the gradient of the distance
    is not taken at zero (where it is undefined for L2 and zero for cosine).
    """
    if target is None:
        with torch.no_grad():
            target = embed_for_metric(model(images), metric)
    target = target.detach()

    def objective(x: torch.Tensor, step: int) -> torch.Tensor:
        reference = target + 1e-7 * torch.randint_like(target, -1, 2) if step == 0 else target
        return -paired(embed_for_metric(model(x), metric), reference, metric, pairwise_eps=pairwise_eps).sum()

    return pgd_minimize(objective, images, eps=eps, alpha=alpha, steps=steps, history=history)


def collapse_pairs(
    model: nn.Module,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    metric: str,
    *,
    eps: float,
    alpha: float,
    steps: int,
    history: list[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ACT's inner attack: perturb positives and negatives jointly to minimise mean d(f(p̃), f(ñ)).

    C: 1 − cos; N: L2 of the normalised embeddings; E: L2 of the raw ones. The anchors are
    not an input at all, so they cannot move.
    """
    n = positives.shape[0]

    def objective(x: torch.Tensor, step: int) -> torch.Tensor:
        emb = embed_for_metric(model(x), metric)
        return paired(emb[:n], emb[n:], metric).mean()

    both = torch.cat([positives, negatives])
    both = pgd_minimize(objective, both, eps=eps, alpha=alpha, steps=steps, history=history)
    return both[:n], both[n:]


def embedding_shift_distance(adversarial: torch.Tensor, benign: torch.Tensor, metric: str) -> torch.Tensor:
    """Per-item distance d(f(x̃), f(x)) from *raw* embeddings, as SES penalises it.

    N: both normalised; C: 1 − cos; E: the reference's "trick" — the adversarial embedding is
    normalised but the benign one is not (kept as published, see docs/defenses.md).
    """
    if metric == "C":
        return 1.0 - torch.nn.functional.cosine_similarity(adversarial, benign, dim=-1)
    if metric == "N":
        return paired(embed_for_metric(adversarial, "N"), embed_for_metric(benign, "N"), "N")
    return paired(embed_for_metric(adversarial, "N"), benign, "E")
