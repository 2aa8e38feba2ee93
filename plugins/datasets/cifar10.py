"""CIFAR-10 (classification only, the reference): 50,000 train / 10,000 test 32x32 RGB images.

Files: the "python version" batches ``data_batch_1..5``, ``test_batch`` and ``batches.meta``
in ``<root>/cifar-10-batches-py`` or ``~/.torch/cifar-10-batches-py``. They are pickles; a
pickle can run arbitrary code, so they are read with an unpickler that only rebuilds numpy
arrays and plain containers and refuses everything else. Train transform
RandomCrop(32, padding=4) + RandomHorizontalFlip (vectorised, in memory), test none.

The profile is ``rob224`` because its ε = 8/255 is CIFAR-10's customary budget; rob28's
ε suits MNIST-like images only.
"""
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
            profile="rob224",
            kinds=("classification",),
            task="classification",
        )
    )
