"""Registers the 28x28 grey-scale backbones of the reference (C2F2, LeNet and their
classifiers); the networks themselves, and why they are built so, are described in
:mod:`.small_nets`.
"""
from __future__ import annotations

from robrank.plugin_api import SIZE_28, TASK_CLASSIFICATION, BackboneRecord, hookimpl

#: the implementation, imported when a component is built (registering imports no torch)
_IMPL = f"{__name__.rpartition('.')[0]}.small_nets"


#: configs_classify of the reference, 28x28 classifiers
_CLASSIFIER_28 = {"batch_size": 1000, "lr": 1e-3, "weight_decay": 1e-7, "optimizer": "Adam"}

RECORDS = (
    BackboneRecord(
        name="c2f2",
        factory=f"{_IMPL}:make_c2f2",
        summary="2 conv + 2 FC layers for 28x28 grey images (reference rc2f2)",
        aliases=("rc2f2",),
        input_size=SIZE_28,
        channels=1,
        default_embedding_dim=512,
    ),
    BackboneRecord(
        name="lenet",
        factory=f"{_IMPL}:make_lenet",
        summary="Caffe LeNet (no ReLU after convs) for 28x28 grey images (reference rlenet)",
        aliases=("rlenet",),
        input_size=SIZE_28,
        channels=1,
        default_embedding_dim=128,
    ),
    BackboneRecord(
        name="cc2f2",
        factory=f"{_IMPL}:make_cc2f2",
        summary="C2F2 classifier, dropout 0.4 before the logits; embedding_dim = number of classes",
        input_size=SIZE_28,
        channels=1,
        default_embedding_dim=10,
        task=TASK_CLASSIFICATION,
        train_defaults={**_CLASSIFIER_28, "epochs": 16},
    ),
    BackboneRecord(
        name="clenet",
        factory=f"{_IMPL}:make_clenet",
        summary="LeNet classifier; embedding_dim = number of classes",
        input_size=SIZE_28,
        channels=1,
        default_embedding_dim=10,
        task=TASK_CLASSIFICATION,
        train_defaults={**_CLASSIFIER_28, "epochs": 10},
    ),
    BackboneRecord(
        name="cslp",
        factory=f"{_IMPL}:make_cslp",
        summary="single-layer classifier Linear(784→classes) (softmax regression)",
        input_size=SIZE_28,
        channels=1,
        default_embedding_dim=10,
        task=TASK_CLASSIFICATION,
        train_defaults={**_CLASSIFIER_28, "epochs": 10},
    ),
)


@hookimpl
def register_backbones(register):
    for record in RECORDS:
        register(record)
