"""torchvision ImageNet backbones for 224x224 RGB images (+ the CIFAR classifiers cres18, cres50).

The last layer is replaced by Linear(→D): ResNet's ``fc``, MnasNet's whole ``classifier``
(its dropout included), as the reference does. ImageNet mean/std normalisation runs inside
``forward``. ``pretrained="imagenet"`` loads torchvision's IMAGENET1K_V1 weights (the ones
the reference's ``pretrained=True`` got) from ``weights=PATH`` or the torch hub cache; a
missing file is a one-line error saying where to put it, never a download.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from robrank.plugin_api import (
    SIZE_224,
    Normalize,
    apply_state,
    check_pretrained,
    hub_checkpoint_path,
    load_imagenet_state,
)


@dataclass(frozen=True)
class Arch:
    """A torchvision architecture and where its ImageNet weights live."""

    builder: str  # torchvision.models function name
    head: str  # attribute replaced by Linear(→D)
    features: int  # input width of that Linear
    file_name: str  # torchvision's cache file name
    url: str


TORCHVISION_URL = "https://download.pytorch.org/models/"

ARCHS: dict[str, Arch] = {
    "resnet18": Arch("resnet18", "fc", 512, "resnet18-f37072fd.pth", TORCHVISION_URL + "resnet18-f37072fd.pth"),
    "resnet50": Arch("resnet50", "fc", 2048, "resnet50-0676ba61.pth", TORCHVISION_URL + "resnet50-0676ba61.pth"),
    "mnasnet10": Arch(
        "mnasnet1_0",
        "classifier",
        1280,
        "mnasnet1.0_top1_73.512-f206786ef8.pth",
        TORCHVISION_URL + "mnasnet1.0_top1_73.512-f206786ef8.pth",
    ),
}


class TorchvisionBackbone(nn.Module):
    """ImageNet normalisation followed by a torchvision network (``self.net``)."""

    channels = 3

    def __init__(self, net: nn.Module, embedding_dim: int, input_size: int = SIZE_224) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.net = net
        self.embedding_dim = embedding_dim
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def build_torchvision(
    name: str,
    embedding_dim: int,
    pretrained: str | None,
    weights: str | Path | None,
    *,
    input_size: int = SIZE_224,
    available: tuple[str, ...] = ("imagenet",),
) -> TorchvisionBackbone:
    import torchvision.models as tvm

    arch = ARCHS[name]
    pretrained = check_pretrained(name, available, pretrained, weights)
    net = getattr(tvm, arch.builder)(weights=None)
    if pretrained == "imagenet":
        state = load_imagenet_state(name, arch.file_name, arch.url, weights)
        apply_state(net, state, name, weights if weights is not None else hub_checkpoint_path(arch.file_name))
    setattr(net, arch.head, nn.Linear(arch.features, embedding_dim))
    return TorchvisionBackbone(net, embedding_dim, input_size)


def make_resnet18(
    embedding_dim: int = 512, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    return build_torchvision("resnet18", embedding_dim, pretrained, weights)


def make_resnet50(
    embedding_dim: int = 512, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    return build_torchvision("resnet50", embedding_dim, pretrained, weights)


def make_mnasnet10(
    embedding_dim: int = 512, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    return build_torchvision("mnasnet10", embedding_dim, pretrained, weights)


def make_cres18(
    embedding_dim: int = 10, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    """ResNet-18 from scratch, fc → number of classes, unchanged ImageNet stem (as the reference)."""
    return build_torchvision("resnet18", embedding_dim, pretrained, weights, input_size=32, available=())


def make_cres50(
    embedding_dim: int = 10, pretrained: str | None = None, weights: str | Path | None = None
) -> nn.Module:
    """ResNet-50 from scratch, fc → number of classes, unchanged ImageNet stem (as the reference)."""
    return build_torchvision("resnet50", embedding_dim, pretrained, weights, input_size=32, available=())
