"""Cars-196 (Stanford Cars), split zero-shot by class (the reference).

Layout: ``cars_annos.mat`` and ``car_ims/*.jpg`` (``car_ims.tgz`` extracted) in one
directory. ``scipy.io.loadmat(squeeze_me=True)['annotations']``: field 0 the relative image
path, field 5 the class 1..196, field 6 the official test flag (ignored: zero-shot).
Classes 1..98 train, 99..196 test; labels are the raw 1-based class ids; items sorted by
path. Standard counts 8,054 / 8,131.
"""
from __future__ import annotations

from robrank.plugin_api import SIZE_224, DatasetRecord, hookimpl

#: the implementation, imported when a component is built (registering imports no torch)
_IMPL = f"{__name__.rpartition('.')[0]}.cars_data"


@hookimpl
def register_datasets(register):
    register(
        DatasetRecord(
            name="cars",
            factory=f"{_IMPL}:CarsSource",
            summary="Cars-196, zero-shot 98/98 classes, 224x224 RGB (manual download)",
            aliases=("cars196",),
            image_size=SIZE_224,
            channels=3,
            num_test_classes=98,
            profile="rob224",
            attack_defaults={"SPQA": {"rate": 7e4}},  # the reference's SPQA rate for this dataset
            default_backbone="resnet18",
            default_loss="ptripletN",
        )
    )
