"""The 28x28 grey-scale backbones of the reference: C2F2 and Caffe's LeNet (+ classifiers).

No input normalisation: MNIST/Fashion pixels in [0, 1] go in as they are. A classifier
(``cc2f2``, ``clenet``, ``cslp``) is the same network with logits as output; its
``embedding_dim`` is the number of classes. The classifiers carry the reference's training
recipe (``configs_classify``: Adam, lr 1e-3, weight decay 1e-7, batch 1000, 16 epochs for
cc2f2 and 10 for clenet/cslp).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from robrank.plugin_api import SIZE_28, check_pretrained


class C2F2(nn.Module):
    """Conv(1→32,k5,p2)-ReLU-MaxPool2 → Conv(32→64,k5,p2)-ReLU-MaxPool2 → FC(3136→1024)-ReLU → FC(1024→D).

    ``dropout`` > 0 puts a Dropout before the last layer (the reference's ``cc2f2``
    classifier uses 0.4; the embedding network ``rc2f2`` has none).
    """

    input_size = SIZE_28
    channels = 1

    def __init__(self, embedding_dim: int = 512, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(32, 64, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(64 * 7 * 7, 1024), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(p=dropout))
        head.append(nn.Linear(1024, embedding_dim))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(-1, 1, 28, 28)))


class LeNet(nn.Module):
    """Caffe LeNet: Conv(1→20,k5)-MaxPool2 → Conv(20→50,k5)-MaxPool2 → FC(800→500)-ReLU → FC(500→D).

    No ReLU after the convolutions, as in Caffe's example network the reference copies.
    """

    input_size = SIZE_28
    channels = 1

    def __init__(self, embedding_dim: int = 128) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.features = nn.Sequential(
            nn.Conv2d(1, 20, kernel_size=5, stride=1),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(20, 50, kernel_size=5, stride=1),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(50 * 4 * 4, 500), nn.ReLU(), nn.Linear(500, embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(-1, 1, 28, 28)))


class SingleLayer(nn.Module):
    """The reference's ``cslp``: one Linear(784→D) on the flattened image (a softmax regression)."""

    input_size = SIZE_28
    channels = 1

    def __init__(self, embedding_dim: int = 10) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.linear = nn.Linear(28 * 28, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(-1, 28 * 28))


def _scratch(name: str, pretrained: str | None, weights: str | Path | None) -> None:
    check_pretrained(name, (), pretrained, weights)


def make_c2f2(
    embedding_dim: int = 512, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    _scratch("c2f2", pretrained, weights)
    return C2F2(embedding_dim)


def make_lenet(
    embedding_dim: int = 128, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    _scratch("lenet", pretrained, weights)
    return LeNet(embedding_dim)


def make_cc2f2(
    embedding_dim: int = 10, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    _scratch("cc2f2", pretrained, weights)
    return C2F2(embedding_dim, dropout=0.4)


def make_clenet(
    embedding_dim: int = 10, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    _scratch("clenet", pretrained, weights)
    return LeNet(embedding_dim)


def make_cslp(
    embedding_dim: int = 10, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    _scratch("cslp", pretrained, weights)
    return SingleLayer(embedding_dim)
