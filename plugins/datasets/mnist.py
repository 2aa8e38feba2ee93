"""Registers MNIST and Fashion-MNIST; the files, the split and the transforms are described in
:mod:`.mnist_data`.
"""
from __future__ import annotations

from robrank.plugin_api import DatasetRecord, hookimpl

#: the implementation, imported when a component is built (registering imports no torch)
_IMPL = f"{__name__.rpartition('.')[0]}.mnist_data"


@hookimpl
def register_datasets(register):
    register(
        DatasetRecord(
            name="mnist",
            factory=f"{_IMPL}:MnistSource",
            summary="MNIST handwritten digits, 60k/10k 28x28 grey (IDX files; auto-download)",
            image_size=28,
            channels=1,
            num_test_classes=10,
            profile="rob28",
            attack_defaults={"SPQA": {"rate": 2e4}},  # the reference's SPQA rate for this dataset
            default_backbone="c2f2",
            default_loss="ptripletN",
        )
    )
    register(
        DatasetRecord(
            name="fashion",
            factory=f"{_IMPL}:FashionSource",
            summary="Fashion-MNIST clothing, 60k/10k 28x28 grey (IDX files; auto-download)",
            aliases=("fashion-mnist",),
            image_size=28,
            channels=1,
            num_test_classes=10,
            profile="rob28",
            attack_defaults={"SPQA": {"rate": 4e4}},  # the reference's SPQA rate for this dataset
            default_backbone="c2f2",
            default_loss="ptripletN",
        )
    )
