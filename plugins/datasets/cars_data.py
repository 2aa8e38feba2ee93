"""Cars-196 (Stanford Cars), split zero-shot by class (the reference).

Layout: ``cars_annos.mat`` and ``car_ims/*.jpg`` (``car_ims.tgz`` extracted) in one
directory. ``scipy.io.loadmat(squeeze_me=True)['annotations']``: field 0 the relative image
path, field 5 the class 1..196, field 6 the official test flag (ignored: zero-shot).
Classes 1..98 train, 99..196 test; labels are the raw 1-based class ids; items sorted by
path. Standard counts 8,054 / 8,131.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from robrank.plugin_api import DataError, ImageTreeSource, SplitIndex

TRAIN_CLASSES = 98  # class ids 1..98 train, 99..196 test


class CarsSource(ImageTreeSource):
    name = "cars"
    dirname = "cars"
    marker_files = ("cars_annos.mat", "car_ims")
    standard_counts = (8054, 8131)

    def how_to_get(self) -> str:
        return (
            "Download car_ims.tgz and cars_annos.mat (Stanford Cars-196; the original "
            "ai.stanford.edu/~jkrause/cars links are dead, mirrors exist e.g. on Kaggle) "
            "and extract car_ims.tgz next to cars_annos.mat."
        )

    def read_index(self, path: Path) -> dict[str, SplitIndex]:
        import scipy.io

        mat_file = path / "cars_annos.mat"
        hint = "download cars_annos.mat again"
        try:
            mat = scipy.io.loadmat(mat_file, squeeze_me=True)
        except FileNotFoundError:
            raise DataError(f"file {mat_file} does not exist; {hint}") from None
        except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError ... on junk
            raise DataError(f"file {mat_file} is not a readable MATLAB file ({exc}); {hint}") from None
        if "annotations" not in mat:
            raise DataError(f"file {mat_file} has no 'annotations' variable; {hint}")
        annotations = np.atleast_1d(mat["annotations"])
        items = []
        for number, entry in enumerate(annotations):
            try:
                relpath, klass = str(entry[0]), int(entry[5])
            except (IndexError, TypeError, ValueError, KeyError):
                raise DataError(f"file {mat_file} annotation {number} lacks a path (field 0) or class (field 5); {hint}") from None
            items.append((relpath, klass))
        items.sort(key=lambda item: item[0])
        splits = {"train": SplitIndex([], []), "test": SplitIndex([], [])}
        for relpath, klass in items:
            entry = splits["train" if klass <= TRAIN_CLASSES else "test"]
            entry.paths.append(path / relpath)
            entry.labels.append(klass)
        return splits
