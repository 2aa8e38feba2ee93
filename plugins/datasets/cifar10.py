"""Registers CIFAR-10; the files, the split and the transforms are described in :mod:`.cifar10_data`."""
from __future__ import annotations

from robrank.plugin_api import DatasetRecord, hookimpl

#: CIFAR-10 images are 32x32
SIZE = 32

#: the implementation, imported when a component is built (registering imports no torch)
_IMPL = f"{__name__.rpartition('.')[0]}.cifar10_data"


@hookimpl
def register_datasets(register):
    register(
        DatasetRecord(
            name="cifar10",
            factory=f"{_IMPL}:Cifar10Source",
            summary="CIFAR-10, 50k/10k 32x32 RGB, classification only (auto-download)",
            image_size=SIZE,
            channels=3,
            num_test_classes=10,
            profile="rob224",  # its eps of 8/255 is CIFAR-10's customary budget; rob28's suits MNIST-like images only
            kinds=("classification",),
            task="classification",
        )
    )
