"""robrank-mydataset: your own image folders as a robrank dataset.

Registers, through the ``robrank`` entry point ``mydataset = "robrank_mydataset"``:

* ``imagefolder`` — 224x224 RGB with the reference CUB/Cars/SOP transforms (ResNet-style
  backbones, swipe profile ``rob224``);
* ``imagefolder28`` — 28x28 greyscale held in memory (``c2f2``/``lenet``, profile ``rob28``).

Both read ``--data-root DIR`` laid out as ``DIR/<class>/*.jpg`` (split by class, first half
of the sorted class names for training) or ``DIR/train/<class>/*.jpg`` +
``DIR/test/<class>/*.jpg``; see :mod:`robrank_mydataset.folders`. The number of test
classes (k of NMI's k-means) is counted from the folders, so the records say 0 ("from the
data").
"""
from __future__ import annotations

import importlib
from typing import Any

from robrank.plugin_api import SIZE_224, SIZE_28, DatasetRecord, hookimpl

from .folders import FolderTree, scan

__version__ = "0.1.0"
__all__ = ["FolderTree", "ImageFolderSource", "ImageFolder28Source", "scan", "register_datasets"]

#: the sources import torch: robrank builds them by these lazy references, so registering
#: the datasets (``robrank --help``, ``robrank list``) imports none of it
_SOURCE = f"{__name__}.source"


def __getattr__(name: str) -> Any:
    if name in ("ImageFolderSource", "ImageFolder28Source"):  # the package's classes, loaded on first access
        return getattr(importlib.import_module(_SOURCE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_datasets(register):
    register(
        DatasetRecord(
            name="imagefolder",
            factory=f"{_SOURCE}:ImageFolderSource",
            summary="your image folders (--data-root DIR: DIR/<class>/ or DIR/train|test/<class>/), 224x224 RGB",
            image_size=SIZE_224,
            channels=3,
            num_test_classes=0,  # counted from DIR's test classes
            profile="rob224",
        )
    )
    register(
        DatasetRecord(
            name="imagefolder28",
            factory=f"{_SOURCE}:ImageFolder28Source",
            summary="your image folders (--data-root DIR), resized to 28x28 greyscale, in memory",
            image_size=SIZE_28,
            channels=1,
            num_test_classes=0,
            profile="rob28",
        )
    )
