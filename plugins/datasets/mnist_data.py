"""MNIST and Fashion-MNIST: IDX files, 60,000 train / 10,000 test 28x28 grey images, 10 classes.

The reference reads ``~/.torch/{MNIST,FashionMNIST}/raw/*.gz`` (torchvision's download
layout); robrank also takes the files straight from the data root, from
``<root>/mnist/`` resp. ``<root>/fashion-mnist/``, from ``<root>/MNIST/raw/`` resp.
``<root>/FashionMNIST/raw/``, and Fashion-MNIST from Debian's ``dataset-fashion-mnist``
package. Both splits are used whole (the zero-shot question does not arise: the test split
has the same 10 classes), with no augmentation and no normalisation, as in the reference.
"""
from __future__ import annotations

from robrank.plugin_api import IdxFile, IdxSource, IdxSplit


class MnistSource(IdxSource):
    name = "mnist"
    root_subdirs = ("mnist", "MNIST/raw")
    home_subdirs = ("MNIST/raw",)
    homepage = "https://ossci-datasets.s3.amazonaws.com/mnist/ (or http://yann.lecun.com/exdb/mnist/)"
    torchvision = "MNIST"  # its mirrors and .gz md5s
    splits = {
        "train": IdxSplit(
            IdxFile("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
            IdxFile("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
            60000,
        ),
        "test": IdxSplit(
            IdxFile("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
            IdxFile("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
            10000,
        ),
    }


class FashionSource(IdxSource):
    name = "fashion"
    root_subdirs = ("fashion-mnist", "FashionMNIST/raw")
    home_subdirs = ("FashionMNIST/raw",)
    system_dirs = ("/usr/share/datasets/fashion-mnist",)  # Debian: apt install dataset-fashion-mnist
    homepage = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    torchvision = "FashionMNIST"  # its mirrors and .gz md5s
    splits = {
        "train": IdxSplit(
            IdxFile("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            IdxFile("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
            60000,
        ),
        "test": IdxSplit(
            IdxFile("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
            IdxFile("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
            10000,
        ),
    }
