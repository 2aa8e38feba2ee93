"""Registers scikit-learn's 8x8 digits upsampled to 28x28 (the quickstart dataset); the files,
the split and the transforms are described in :mod:`.digits_data`.
"""
from __future__ import annotations

from robrank.plugin_api import SIZE_28, DatasetRecord, hookimpl

#: the implementation, imported when a component is built (registering imports no torch)
_IMPL = f"{__name__.rpartition('.')[0]}.digits_data"


@hookimpl
def register_datasets(register):
    register(
        DatasetRecord(
            name="digits",
            factory=f"{_IMPL}:DigitsSource",
            summary="scikit-learn's 8x8 digits upsampled to 28x28, 1433/364 (built in, no download)",
            image_size=SIZE_28,
            channels=1,
            num_test_classes=10,
            profile="rob28",
            default_backbone="lenet",
            default_loss="ptripletN",
            quickstart=True,
        )
    )
