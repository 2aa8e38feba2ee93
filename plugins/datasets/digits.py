"""scikit-learn's bundled 8x8 handwritten digits, upsampled to 28x28: the dataset that needs no files.

It ships inside scikit-learn (a robrank dependency), so the quickstart, the tests and a
first ``robrank run`` work with no download at all, with the same shape as MNIST (1 x 28 x
28, 10 classes) and hence the same backbones and the ``rob28`` profile.

Images: the 1,797 images of ``sklearn.datasets.load_digits`` (values 0..16) scaled to [0, 1],
resized to 28 x 28 with bilinear interpolation (``torch.nn.functional.interpolate``,
``align_corners=False``, antialias on), then stored as uint8 (round(255 * x)).

Split (deterministic, stratified): within each class, in the dataset's order, every 5th
image (positions 0, 5, 10, ...) goes to test and the rest to train: 1,433 train / 364 test.
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
