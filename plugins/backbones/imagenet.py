"""Registers the torchvision ImageNet backbones for 224x224 RGB images and the CIFAR
classifiers; the networks themselves, and why they are built so, are described in
:mod:`.imagenet_nets`.
"""
from __future__ import annotations

from robrank.plugin_api import SIZE_224, TASK_CLASSIFICATION, BackboneRecord, hookimpl

#: the implementation, imported when a component is built (registering imports no torch)
_IMPL = f"{__name__.rpartition('.')[0]}.imagenet_nets"


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
        factory=f"{_IMPL}:make_resnet18",
        summary="torchvision ResNet-18, fc → Linear(512→D), ImageNet normalisation inside (reference rres18)",
        aliases=("rres18",),
        input_size=SIZE_224,
        default_embedding_dim=512,
        **_HAS,
    ),
    BackboneRecord(
        name="resnet50",
        factory=f"{_IMPL}:make_resnet50",
        summary="torchvision ResNet-50, fc → Linear(2048→D), ImageNet normalisation inside (reference rres50)",
        aliases=("rres50",),
        input_size=SIZE_224,
        default_embedding_dim=512,
        **_HAS,
    ),
    BackboneRecord(
        name="mnasnet10",
        factory=f"{_IMPL}:make_mnasnet10",
        summary="torchvision MnasNet 1.0, classifier → Linear(1280→D), ImageNet normalisation (reference rmnas10)",
        aliases=("rmnas10", "mnasnet1_0"),
        input_size=SIZE_224,
        default_embedding_dim=512,
        **_HAS,
    ),
    BackboneRecord(
        name="cres18",
        factory=f"{_IMPL}:make_cres18",
        summary="ResNet-18 classifier from scratch for 32x32 RGB (CIFAR); embedding_dim = number of classes",
        **_CIFAR_CLASSIFIER,
    ),
    BackboneRecord(
        name="cres50",
        factory=f"{_IMPL}:make_cres50",
        summary="ResNet-50 classifier from scratch for 32x32 RGB (CIFAR); embedding_dim = number of classes",
        **_CIFAR_CLASSIFIER,
    ),
)


@hookimpl
def register_backbones(register):
    for record in RECORDS:
        register(record)
