"""SPC-2 pairs and triplets: per-item datasets and the vectorised samplers agree with their definition."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from robrank.data.base import TensorImageDataset
from robrank.data.kinds import (
    PairDataset,
    TripletDataset,
    build_kind,
    spc2_partners,
)
from robrank.errors import ConfigError


def indexed_dataset(labels: list[int]) -> TensorImageDataset:
    """Image i is filled with the value i, so an item shows which indices it was built from."""
    n = len(labels)
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    return TensorImageDataset(images, torch.tensor(labels))


def which(image: torch.Tensor) -> int:
    return int(round(float(image.flatten()[0]) * 255))


def test_partners_share_the_label_and_cover_the_class_uniformly():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 0, 3, 3, 3])
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([spc2_partners(labels, generator) for _ in range(3000)])  # 3000 x 10
    assert torch.equal(labels[draws], labels.expand_as(draws))
    assert draws[:, 5].unique().tolist() == [5]  # a singleton class pairs with itself
    counts = Counter(draws[:, 0].tolist())  # class 0 = {0, 1, 2, 6}, self included
    assert sorted(counts) == [0, 1, 2, 6]
    assert all(abs(c / 3000 - 0.25) < 0.04 for c in counts.values())


def test_partners_are_reproducible_with_a_generator_and_keep_the_device():
    labels = torch.randint(0, 7, (500,), generator=torch.Generator().manual_seed(1))
    a = spc2_partners(labels, torch.Generator().manual_seed(5))
    b = spc2_partners(labels, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.int64 and a.device == labels.device


def test_pair_dataset_items_and_dataloader_layout():
    labels = [0, 1, 0, 1, 2, 2, 0]
    pairs = PairDataset(indexed_dataset(labels))
    assert len(pairs) == 7
    torch.manual_seed(0)
    for i in range(7):
        x, y = pairs[i]
        assert x.shape == (2, 1, 4, 4) and y.tolist() == [labels[i], labels[i]]
        assert which(x[0]) == i and labels[which(x[1])] == labels[i]
    loader = torch.utils.data.DataLoader(pairs, batch_size=3, shuffle=True)
    x, y = next(iter(loader))
    images, flat = x.reshape(-1, 1, 4, 4), y.reshape(-1)  # 2B images as the losses see them
    assert flat[0::2].tolist() == flat[1::2].tolist()
    assert [labels[which(img)] for img in images] == flat.tolist()


def test_triplets_per_item():
    labels = [0, 0, 1, 1, 2, 2, 3]
    triplets = TripletDataset(indexed_dataset(labels), generator=torch.Generator().manual_seed(0))
    negative_classes = set()
    for _ in range(50):
        x, y = triplets[0]
        a, p, n = (which(img) for img in x)
        assert (a, y) == (0, 0) and labels[p] == 0 and labels[n] != 0
        negative_classes.add(labels[n])
    assert negative_classes == {1, 2, 3}  # the negative's class is random among the others
    with pytest.raises(ConfigError, match="two classes"):
        TripletDataset(indexed_dataset([4, 4]))


def test_build_kind():
    base = indexed_dataset([0, 1])
    assert build_kind("classification", base) is base
    assert isinstance(build_kind("SPC-2", base), PairDataset)
    assert isinstance(build_kind("triplet", base), TripletDataset)
    with pytest.raises(ConfigError, match="unknown batch layout 'pairs'; known: classification, SPC-2, triplet"):
        build_kind("pairs", base)
