"""The speed work must not move a science number: the reference-style swipe (reload and
re-embed per attack, batch 128) and the shipped runner (one load, one gallery, automatic
batch) give the same JSON numbers on the same checkpoint and queries."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.timeout(120)
def test_before_and_after_give_the_same_numbers(untrained_run, tmp_path):
    from swipe_throughput import baseline_swipe, current_swipe, max_difference, numbers

    torch.set_num_threads(1)
    queries = 20
    before = numbers(baseline_swipe(untrained_run, "rob28", tmp_path / "before.json", queries=queries))
    after = numbers(current_swipe(untrained_run, "rob28", tmp_path / "after.json", queries=queries))
    assert len(after) == 9 and all(count == queries for count, _, _ in after.values())
    # batch 128 vs the automatic 256 give the same batches here (20 queries): bit-identical
    assert max_difference(before, after) <= 1e-12
    # the numbers are real: the attacks moved something
    assert any(abs(adv.get("prank", 0) - orig.get("prank", 0)) > 1e-3 for _, orig, adv in after.values())


@pytest.mark.parametrize("workers", [0, 1])
def test_file_datasets_are_batched_by_loader_workers_in_order(tmp_path, workers):
    """iter_images decodes file splits through a DataLoader; the batches equal images(index)."""
    from PIL import Image

    from robrank.attacks import iter_images
    from robrank.data.base import FileImageDataset

    g = torch.Generator().manual_seed(0)
    paths = []
    for i in range(7):
        pixels = torch.randint(0, 256, (5, 5, 3), dtype=torch.uint8, generator=g).numpy()
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels).save(paths[-1])

    def to_tensor(image):
        import numpy as np

        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)

    dataset = FileImageDataset(paths, [0, 1, 0, 1, 0, 1, 0], to_tensor, image_size=5)
    batches = [torch.tensor([6, 0, 3]), torch.tensor([1, 2]), torch.tensor([5, 4])]
    got = list(iter_images(dataset, batches, "cpu", num_workers=workers))
    assert [b.shape[0] for b in got] == [3, 2, 2]
    for index, images in zip(batches, got):
        assert torch.equal(images, dataset.images(index))
