"""The batch layouts of the reference code, built on any split (the reference).

* ``classification``: the split itself, items ``(image, label)``.
* ``SPC-2`` (all ``p*`` losses): item i is ``(stack[img_i, img_j], [y_i, y_i])`` where j is a
  uniformly random index with the same label -- possibly i itself, as in the reference.
  A DataLoader batch of B items, flattened to 2B images, reads ``[a1, p1, a2, p2, ...]``:
  the layout the losses and miners expect.
* ``triplet`` (``t*`` losses): item is ``(stack[a, p, n], y_a)`` with p a random same-label
  index and n drawn from a uniformly chosen *other* class. (The reference's SOP variant draws
  n from any index without checking its class; here every dataset gets a true negative.)

The training engine keeps 28x28 splits in memory and draws a whole epoch's partners with
the vectorised :func:`spc2_partners`; file datasets go through a DataLoader over the
per-item dataset :func:`build_kind` makes for the loss's batch layout.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import ImageDataset

KINDS: tuple[str, ...] = ("classification", "SPC-2", "triplet")


class _ClassIndex:
    """Labels grouped by class: ``order`` lists indices class by class, ``start``/``count`` per class."""

    def __init__(self, labels: torch.Tensor) -> None:
        labels = torch.as_tensor(labels).reshape(-1).to(torch.int64).cpu()
        self.classes, self.inverse, self.count = torch.unique(labels, return_inverse=True, return_counts=True)
        self.order = torch.argsort(self.inverse, stable=True)
        self.start = torch.cumsum(self.count, 0) - self.count

    def random_member(self, class_slot: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A uniformly random index of each given class (slots index ``self.classes``)."""
        u = torch.rand(class_slot.shape, generator=generator, dtype=torch.float64)
        offset = (u * self.count[class_slot]).floor().to(torch.int64)
        offset = torch.minimum(offset, self.count[class_slot] - 1)
        return self.order[self.start[class_slot] + offset]


def spc2_partners(labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each index i, a uniformly random index j with ``labels[j] == labels[i]`` (j may be i)."""
    index = _ClassIndex(labels)
    return index.random_member(index.inverse, generator).to(torch.as_tensor(labels).device)


class _Layout(torch.utils.data.Dataset):
    def __init__(self, base: ImageDataset, generator: torch.Generator | None = None) -> None:
        self.base = base
        self.labels = base.labels
        self.generator = generator
        self._index = _ClassIndex(base.labels)

    def __len__(self) -> int:
        return len(self.base)

    def _partner(self, i: int) -> int:
        slot = self._index.inverse[i : i + 1]
        return int(self._index.random_member(slot, self.generator)[0])


class PairDataset(_Layout):
    """SPC-2 items: ``(stack[img_i, img_j], tensor([y_i, y_i]))`` with j a random same-class index.

    Randomness comes from torch's global generator unless one is given, so DataLoader
    workers (which seed torch per worker) draw different partners.
    """

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self._partner(i)
        x_i, y_i = self.base[i]
        x_j, _ = self.base[j]
        return torch.stack([x_i, x_j]), torch.tensor([y_i, y_i], dtype=torch.int64)


class TripletDataset(_Layout):
    """Triplet items: ``(stack[a, p, n], y_a)``; p same class, n from a random other class."""

    def __init__(self, base: ImageDataset, generator: torch.Generator | None = None) -> None:
        super().__init__(base, generator)
        if self._index.classes.numel() < 2:
            raise ConfigError("triplets need at least two classes in the split")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        index = self._index
        p = self._partner(i)
        k = index.classes.numel()
        shift = torch.randint(1, k, (1,), generator=self.generator)
        n = int(index.random_member((index.inverse[i : i + 1] + shift) % k, self.generator)[0])
        x_a, y_a = self.base[i]
        return torch.stack([x_a, self.base[p][0], self.base[n][0]]), y_a


def build_kind(kind: str, base: ImageDataset, generator: torch.Generator | None = None) -> torch.utils.data.Dataset:
    """The training dataset for a loss's batch layout (``LossRecord.batch``)."""
    if kind == "classification":
        return base
    if kind == "SPC-2":
        return PairDataset(base, generator)
    if kind == "triplet":
        return TripletDataset(base, generator)
    raise ConfigError(f"unknown batch layout {kind!r}; known: {', '.join(KINDS)}")
