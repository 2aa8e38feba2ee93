"""MNIST and Fashion-MNIST: IDX files, 60,000 train / 10,000 test 28x28 grey images, 10 classes.

The reference reads ``~/.torch/{MNIST,FashionMNIST}/raw/*.gz`` (torchvision's download
layout); robrank also takes the files straight from the data root, from
``<root>/mnist/`` resp. ``<root>/fashion-mnist/``, from ``<root>/MNIST/raw/`` resp.
``<root>/FashionMNIST/raw/``, and Fashion-MNIST from Debian's ``dataset-fashion-mnist``
package. Both splits are used whole (the zero-shot question does not arise: the test split
has the same 10 classes), with no augmentation and no normalisation, as in the reference.
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
