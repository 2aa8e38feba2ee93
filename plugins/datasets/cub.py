"""CUB-200-2011 birds, split zero-shot as in the ICML'20 "revisiting" protocol (the reference).

Layout (the Caltech archive ``CUB_200_2011.tgz`` extracted): ``images.txt`` (id, relative
path), ``image_class_labels.txt`` (id, class 1..200), ``images/<NNN.name>/<file>.jpg``;
``train_test_split.txt`` is ignored (zero-shot). Classes 1..100 train, 101..200 test;
label = class folder number - 1, so test labels stay 100..199 (not re-indexed), in
``images.txt`` order. Standard counts 5,864 / 5,924.
"""
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
