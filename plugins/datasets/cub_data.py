"""CUB-200-2011 birds, split zero-shot as in the ICML'20 "revisiting" protocol (the reference).

Layout (the Caltech archive ``CUB_200_2011.tgz`` extracted): ``images.txt`` (id, relative
path), ``image_class_labels.txt`` (id, class 1..200), ``images/<NNN.name>/<file>.jpg``;
``train_test_split.txt`` is ignored (zero-shot). Classes 1..100 train, 101..200 test;
label = class folder number - 1, so test labels stay 100..199 (not re-indexed), in
``images.txt`` order. Standard counts 5,864 / 5,924.
"""
from __future__ import annotations

from pathlib import Path

from robrank.plugin_api import DataError, ImageTreeSource, SplitIndex, parse_int, read_table

TRAIN_CLASSES = 100  # class ids 1..100 train, 101..200 test


class CubSource(ImageTreeSource):
    name = "cub"
    dirname = "CUB_200_2011"
    marker_files = ("images.txt", "image_class_labels.txt", "images")
    standard_counts = (5864, 5924)

    def how_to_get(self) -> str:
        return (
            "Download CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/ "
            "(data.caltech.edu/records/65de6-vfe40) and extract it (tar xzf CUB_200_2011.tgz)."
        )

    def read_index(self, path: Path) -> dict[str, SplitIndex]:
        hint = "re-extract CUB_200_2011.tgz"
        images_txt, labels_txt = path / "images.txt", path / "image_class_labels.txt"
        classes = {row[0]: parse_int(row[1], labels_txt, "class id", hint) for row in read_table(labels_txt, 2, hint=hint)}
        splits = {"train": SplitIndex([], []), "test": SplitIndex([], [])}
        for image_id, relpath in read_table(images_txt, 2, hint=hint):
            if image_id not in classes:
                raise DataError(f"file {labels_txt} has no class for image {image_id} of {images_txt}; {hint}")
            folder = relpath.split("/", 1)[0]
            number = parse_int(folder.split(".", 1)[0], images_txt, "class folder", hint)
            if number != classes[image_id]:
                raise DataError(
                    f"image {image_id} is in folder {folder} of {images_txt} but has class {classes[image_id]} "
                    f"in {labels_txt}; {hint}"
                )
            entry = splits["train" if number <= TRAIN_CLASSES else "test"]
            entry.paths.append(path / "images" / relpath)
            entry.labels.append(number - 1)
        return splits
