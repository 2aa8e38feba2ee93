"""Registers Stanford Online Products; the files, the split and the transforms are described in
:mod:`.sop_data`.
"""
from __future__ import annotations

from robrank.plugin_api import SIZE_224, DatasetRecord, hookimpl

#: the implementation, imported when a component is built (registering imports no torch)
_IMPL = f"{__name__.rpartition('.')[0]}.sop_data"


@hookimpl
def register_datasets(register):
    register(
        DatasetRecord(
            name="sop",
            factory=f"{_IMPL}:SopSource",
            summary="Stanford Online Products, 11318/11316 classes, 224x224 RGB (manual download)",
            aliases=("stanford-online-products",),
            image_size=SIZE_224,
            channels=3,
            num_test_classes=11316,
            profile="rob224",
            attack_defaults={"SPQA": {"rate": 7e4}},  # the reference's SPQA rate for this dataset
            default_backbone="resnet18",
            default_loss="ptripletN",
        )
    )
