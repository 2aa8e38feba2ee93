"""Registers CUB-200-2011; the files, the split and the transforms are described in :mod:`.cub_data`."""
from __future__ import annotations

from robrank.plugin_api import SIZE_224, DatasetRecord, hookimpl

#: the implementation, imported when a component is built (registering imports no torch)
_IMPL = f"{__name__.rpartition('.')[0]}.cub_data"


@hookimpl
def register_datasets(register):
    register(
        DatasetRecord(
            name="cub",
            factory=f"{_IMPL}:CubSource",
            summary="CUB-200-2011 birds, zero-shot 100/100 classes, 224x224 RGB (manual download)",
            aliases=("cub200",),
            image_size=SIZE_224,
            channels=3,
            num_test_classes=100,
            profile="rob224",
            attack_defaults={"SPQA": {"rate": 4e4}},  # the reference's SPQA rate for this dataset
            default_backbone="resnet18",
            default_loss="ptripletN",
        )
    )
