"""Registers Cars-196; the files, the split and the transforms are described in :mod:`.cars_data`."""
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
