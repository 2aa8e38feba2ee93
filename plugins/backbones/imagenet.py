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
    TASK_CLASSIFICATION,
    BackboneRecord,
    Normalize,
    apply_state,
    check_pretrained,
    hookimpl,
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


#: configs_classify of the reference for CIFAR-10: SGD 0.1, momentum 0.9, wd 2e-4, 200 epochs, lr x0.1 at 100, 150
CIFAR_RECIPE = {
    "epochs": 200,
    "batch_size": 256,
    "lr": 0.1,
    "optimizer": "SGD",
    "momentum": 0.9,
    "weight_decay": 2e-4,
    "milestones": (100, 150),
    "lr_gamma": 0.1,
}

_HAS = dict(channels=3, pretrained=("imagenet",), has_batchnorm=True)
#: what the CIFAR classifiers share: 32x32 RGB in, one logit per class out, the reference's recipe
_CIFAR_CLASSIFIER = dict(input_size=32, channels=3, default_embedding_dim=10, has_batchnorm=True,
                         task=TASK_CLASSIFICATION, train_defaults=CIFAR_RECIPE)

RECORDS = (
    BackboneRecord(
        name="resnet18",
        factory=make_resnet18,
        summary="torchvision ResNet-18, fc → Linear(512→D), ImageNet normalisation inside (reference rres18)",
        aliases=("rres18",),
        input_size=SIZE_224,
        default_embedding_dim=512,
        **_HAS,
    ),
    BackboneRecord(
        name="resnet50",
        factory=make_resnet50,
        summary="torchvision ResNet-50, fc → Linear(2048→D), ImageNet normalisation inside (reference rres50)",
        aliases=("rres50",),
        input_size=SIZE_224,
        default_embedding_dim=512,
        **_HAS,
    ),
    BackboneRecord(
        name="mnasnet10",
        factory=make_mnasnet10,
        summary="torchvision MnasNet 1.0, classifier → Linear(1280→D), ImageNet normalisation (reference rmnas10)",
        aliases=("rmnas10", "mnasnet1_0"),
        input_size=SIZE_224,
        default_embedding_dim=512,
        **_HAS,
    ),
    BackboneRecord(
        name="cres18",
        factory=make_cres18,
        summary="ResNet-18 classifier from scratch for 32x32 RGB (CIFAR); embedding_dim = number of classes",
        **_CIFAR_CLASSIFIER,
    ),
    BackboneRecord(
        name="cres50",
        factory=make_cres50,
        summary="ResNet-50 classifier from scratch for 32x32 RGB (CIFAR); embedding_dim = number of classes",
        **_CIFAR_CLASSIFIER,
    ),
)


@hookimpl
def register_backbones(register):
    for record in RECORDS:
        register(record)
