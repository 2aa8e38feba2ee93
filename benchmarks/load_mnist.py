"""Time to load MNIST (train + test, 70,000 images) from the shared IDX files into memory.

Prints the wall time of ``MnistSource.load_split`` for both splits from the ``.gz`` files
(as shipped) and from uncompressed copies, best of ``--repeat`` fresh sources each, and the
time of ``verify`` (headers + md5 of every file) for comparison: loading must not hash.

    python benchmarks/load_mnist.py [--data-root DIR (default: $ROBRANK_DATA)] [--repeat 5]
"""
from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from pathlib import Path

import torch

from robrank_plugins.datasets.mnist_data import MnistSource

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def best_load(root: Path, repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        source = MnistSource(root)  # a fresh source: nothing cached
        start = time.perf_counter()
        train, test = source.load_split("train"), source.load_split("test")
        best = min(best, time.perf_counter() - start)
        count = len(train) + len(test)
        assert train.data.dtype == torch.uint8
    return best, count


def main() -> None:
    default = os.environ.get("ROBRANK_DATA")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(default) if default else None, required=not default,
                        help="folder holding mnist/ [$ROBRANK_DATA]")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    seconds, count = best_load(args.data_root, args.repeat)
    print(f"load MNIST train+test from .gz : {seconds:.3f} s for {count} images ({count / seconds:,.0f} images/s)")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "mnist"
        raw.mkdir()
        located = MnistSource(args.data_root).locate()
        for name in NAMES:
            (raw / name).write_bytes(gzip.decompress((located / f"{name}.gz").read_bytes()))
        seconds_raw, _ = best_load(Path(tmp), args.repeat)
        print(f"load MNIST train+test from raw : {seconds_raw:.3f} s")
    source = MnistSource(args.data_root)
    start = time.perf_counter()
    source.verify(source.locate())
    print(f"verify MNIST (headers + md5)   : {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
