"""Stanford Online Products, official split (the reference).

Layout (``Stanford_Online_Products.zip`` extracted): ``Ebay_train.txt`` and
``Ebay_test.txt``, each a header line then ``image_id class_id super_class_id path``, images
under ``<root>/<path>``. Train = Ebay_train (59,551 images, 11,318 classes), test =
Ebay_test (60,502 images, 11,316 classes); label = class_id (1-based, not re-indexed).
"""
from __future__ import annotations

from pathlib import Path

from robrank.plugin_api import ImageTreeSource, SplitIndex, parse_int, read_table


class SopSource(ImageTreeSource):
    name = "sop"
    dirname = "Stanford_Online_Products"
    marker_files = ("Ebay_train.txt", "Ebay_test.txt")
    standard_counts = (59551, 60502)

    def how_to_get(self) -> str:
        return (
            "Download Stanford_Online_Products.zip from https://cvgl.stanford.edu/projects/lifted_struct/ "
            "and unzip it."
        )

    def read_index(self, path: Path) -> dict[str, SplitIndex]:
        hint = "unzip Stanford_Online_Products.zip again"
        splits = {}
        for split, filename in (("train", "Ebay_train.txt"), ("test", "Ebay_test.txt")):
            table = path / filename
            rows = read_table(table, 4, header=True, hint=hint)
            splits[split] = SplitIndex(
                [path / row[3] for row in rows],
                [parse_int(row[1], table, "class_id", hint) for row in rows],
            )
        return splits
