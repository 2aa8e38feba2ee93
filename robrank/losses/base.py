"""What a loss or miner plugin builds on: SPC-2 batch helpers, distances, base classes.

Every bundled loss consumes an SPC-2 batch: 2B raw embeddings laid out [c1, c1, c2, c2, ...]
so that even index 2i is an anchor and odd index 2i+1 its same-class partner. Losses take
*raw* embeddings and apply the metric's normalisation themselves (as the reference losses
do), because the training engine and the defenses hand them ``model(x)``, not
``model.embed(x)``.

Triplet-style losses (triplet, contrastive, margin, quadruplet, SNR) split into a *miner*
that picks (anchor, positive, negative) indices on the normalised embeddings without
gradient, and a *kernel* ``raw(a, p, n)`` on already-embedded tensors. Defenses need the
split: ACT, HM and friends perturb the images of mined triplets and then call ``raw`` on the
adversarial embeddings.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from ..distances import check_metric, embed_for_metric
from ..errors import ConfigError

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

#: The reference's second optimiser for losses with learnable parameters (``pmargin*`` β).
DEFAULT_PARAM_OPTIMIZER: tuple[str, dict[str, float]] = ("SGD", {"lr": 5e-4})


def check_spc2(embeddings: torch.Tensor, labels: torch.Tensor, who: str) -> None:
    """Reject batches that cannot be SPC-2 before indexing goes wrong silently."""
    if embeddings.dim() != 2:
        raise ConfigError(f"{who} expects embeddings of shape [2B, D]; got {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    if n < 2 or n % 2:
        raise ConfigError(
            f"{who} expects an SPC-2 batch (pairs [c1, c1, c2, c2, ...], even size >= 2); got {n} embeddings"
        )
    if labels.numel() != n:
        raise ConfigError(f"{who} got {n} embeddings but {labels.numel()} labels")


def spc2_anchors_positives(n: int, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchors at even indices, their partners at the following odd index."""
    return (
        torch.arange(0, n, 2, dtype=torch.long, device=device),
        torch.arange(1, n, 2, dtype=torch.long, device=device),
    )


#: the Gram-expansion floor of the losses' distance matrices (``distances.pairwise(gram_floor=)``):
#: identical rows get a zero gradient instead of NaN (``torch.cdist`` may give NaN)
LOSS_GRAM_FLOOR = 1e-12
#: mining's floor: the reference's Gram formula, its rounding-negative diagonal clamped at zero
MINER_GRAM_FLOOR = 0.0


def random_uniform(shape: Sequence[int], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """``torch.rand`` that honours a generator living on another device than the data."""
    if generator is None:
        return torch.rand(*shape, device=device)
    return torch.rand(*shape, generator=generator, device=generator.device).to(device)


def choose_in_rows(masks: Sequence[torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row, uniformly among the True entries of the first mask that has any.

    ``masks`` are [R, N] boolean candidates in order of preference (a miner's rule, then its
    fallbacks); a row with no True in any of them picks uniformly among all N columns, as
    the reference's last-resort ``np.random.choice(len(labels))`` does.
    """
    first = masks[0]
    chosen = torch.zeros_like(first)
    pending = torch.ones(first.shape[0], dtype=torch.bool, device=first.device)
    for mask in masks:  # torch.where, not boolean indexing: no host sync on a GPU
        usable = mask.any(dim=1) & pending
        chosen = torch.where(usable.unsqueeze(1), mask, chosen)
        pending = pending & ~usable
    chosen = chosen | pending.unsqueeze(1)
    scores = random_uniform(chosen.shape, chosen.device, generator)
    scores = scores.masked_fill(~chosen, -1.0)
    return scores.argmax(dim=1)


class Miner(ABC):
    """Picks SPC-2 triplets: ``miner(embeddings, labels) -> (a_idx, p_idx, n_idx)``.

    ``embeddings`` are already normalised for ``metric`` (as the loss sees them); the
    result are int64 index tensors on the embeddings' device, one triplet per anchor, with
    anchors at the even indices 0, 2, 4, ... . Mining never builds a graph.
    """

    name: ClassVar[str] = ""
    letter: ClassVar[str] = ""

    def __init__(self, metric: str, margin: float | None = None, *, generator: torch.Generator | None = None) -> None:
        self.metric = check_metric(metric)
        self.margin = margin
        self.generator = generator

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        check_spc2(embeddings, labels, f"miner {self.name!r}")
        with torch.no_grad():
            return self.mine(embeddings.detach(), labels.detach().view(-1).to(embeddings.device))

    @abstractmethod
    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        """The mining rule proper, on detached embeddings."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(metric={self.metric!r}, margin={self.margin!r})"


class Criterion(nn.Module):
    """Base of every loss module: ``criterion(embeddings_raw [2B, D], labels [2B]) -> scalar``.

    ``metric`` is the metric the loss was built for, ``miner`` the triplet miner or None.
    A loss with learnable parameters (the margin loss's β) is optimised by a separate
    optimiser, as in the reference: :meth:`make_optimizer` builds it (SGD, lr 5e-4).
    """

    family: ClassVar[str] = ""
    supported_metrics: ClassVar[tuple[str, ...]] = ("C", "E", "N")
    param_optimizer: ClassVar[tuple[str, dict[str, float]]] = DEFAULT_PARAM_OPTIMIZER

    def __init__(self, metric: str, miner: Any = None, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_metric(metric)
        if metric not in self.supported_metrics:
            raise ConfigError(
                f"loss {self.family or type(self).__name__!r} does not support metric {metric}; "
                f"supported: {', '.join(self.supported_metrics)}"
            )
        self.metric = metric
        self.miner = miner
        self.generator = generator

    def embed(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The metric's normalisation (L2 for C and N), applied by the loss itself."""
        return embed_for_metric(embeddings, self.metric)

    @property
    def miner_margin(self) -> float | None:
        """The margin this loss hands its miner (it matters for the semihard rule only)."""
        return getattr(self, "margin", None)

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        """The loss's own optimiser, or None when it has nothing to learn."""
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return None
        name, kwargs = self.param_optimizer
        return getattr(torch.optim, name)(params, **kwargs)

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}, miner={self.miner!r}"


class TripletCriterion(Criterion):
    """A loss that mines (a, p, n) and applies a kernel: subclasses define :meth:`raw`."""

    uses_miner: ClassVar[bool] = True

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_spc2(embeddings, labels, f"loss {self.family!r}")
        x = self.embed(embeddings)
        a, p, n = self.triplets(x, labels)
        return self.raw(x[a], x[p], x[n])

    def triplets(self, embedded: torch.Tensor, labels: torch.Tensor) -> Triplets:
        """Mine triplets on embeddings already normalised for the metric (defenses call this)."""
        if self.miner is None:
            raise ConfigError(
                f"loss {self.family!r} has no miner; build it with robrank.losses.build_criterion"
            )
        return self.miner(embedded, labels)

    @abstractmethod
    def raw(self, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, *, margin: float | None = None) -> torch.Tensor:
        """The loss on matching rows of metric-embedded a, p, n (``margin`` overrides)."""
        raise NotImplementedError(f"{type(self).__name__} must define raw(a, p, n)")


def mean_or_zero(values: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean of ``values``, or a graph-connected 0 when empty (reference: NaN mean -> 0)."""
    if values.numel() == 0:
        return reference.sum() * 0.0
    return values.mean()


def active_mean(terms: torch.Tensor) -> torch.Tensor:
    """Mean over the strictly positive entries of hinge ``terms``; 0 if none is active.

    The reference writes ``masked_select(l, l > 0).mean()`` and replaces the NaN of an empty
    selection by 0; this is the same without the host round-trip.
    """
    active = (terms > 0).to(terms.dtype)
    return (terms * active).sum() / active.sum().clamp_min(1.0)


__all__ = [
    "Criterion",
    "TripletCriterion",
    "Miner",
    "Triplets",
    "DEFAULT_PARAM_OPTIMIZER",
    "active_mean",
    "check_spc2",
    "choose_in_rows",
    "LOSS_GRAM_FLOOR",
    "mean_or_zero",
    "MINER_GRAM_FLOOR",
    "random_uniform",
    "spc2_anchors_positives",
]
