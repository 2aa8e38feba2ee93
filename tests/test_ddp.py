"""DDP with 2 gloo processes equals one process with twice the batch on the same pair order."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from robrank.data.base import TensorImageDataset
from robrank.defenses import NoDefense
from robrank.io import load_checkpoint
from robrank.models.embedding import EmbeddingModel
from robrank.training import TrainConfig
from robrank.training import distributed as dist_util
from robrank.training.engine import TrainParts, fit

PAIRS_PER_RANK = 8
CONFIG = dict(dataset="stand-in", backbone="stand-in", loss="stand-in", metric="N", miner="", epochs=2, lr=1e-2,
              weight_decay=0.0, embedding_dim=16, pretrained="none", freeze_bn=False, device="cpu", num_workers=0,
              validate_every=1, val_batch_size=64)


class PairLoss(nn.Module):
    """A loss that is a mean of per-pair terms: its mean over a batch = mean of equal halves."""

    metric = "N"

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        a, p = embeddings[0::2], embeddings[1::2]
        target = nn.functional.one_hot(labels[0::2] % embeddings.shape[1], embeddings.shape[1]).float()
        return ((a - p) ** 2).sum(1).mean() + ((a - target) ** 2).sum(1).mean()


def stand_in_parts() -> TrainParts:
    g = torch.Generator().manual_seed(7)
    images = torch.randint(0, 256, (64, 1, 6, 6), dtype=torch.uint8, generator=g)
    labels = torch.arange(64) % 4
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(36, 32), nn.ReLU(), nn.Linear(32, 16))
    return TrainParts(EmbeddingModel(backbone, "N"), PairLoss(), NoDefense(), TensorImageDataset(images, labels), None, 4)


def _worker(rank: int, world_size: int, run_dir: str) -> None:
    torch.set_num_threads(1)
    info = dist_util.from_env()
    assert (info.rank, info.world_size) == (rank, world_size)
    config = TrainConfig(**CONFIG, batch_size=PAIRS_PER_RANK)
    try:
        fit(config, stand_in_parts(), Path(run_dir), progress=False, info=info)
    finally:
        dist_util.destroy_process_group()


def test_shard_pairs_split_global_batches():
    pairs = torch.arange(22).view(11, 2)  # 11 pairs, padded to 12 for 2 ranks
    rank0 = dist_util.shard_pairs(pairs, 4, dist_util.DistInfo(0, 2, 0))
    rank1 = dist_util.shard_pairs(pairs, 4, dist_util.DistInfo(1, 2, 1))
    single = dist_util.shard_pairs(torch.cat([pairs, pairs[:1]]), 8, dist_util.SINGLE)
    assert [len(b) for b in rank0] == [4, 2] and [len(b) for b in rank1] == [4, 2]
    for b0, b1, whole in zip(rank0, rank1, single):
        assert torch.equal(torch.cat([b0, b1]), whole)


@pytest.mark.timeout(300)
def test_two_gloo_processes_match_single_process_with_double_batch(tmp_path):
    dist_util.spawn(_worker, 2, (str(tmp_path / "ddp"),))

    config = TrainConfig(**CONFIG, batch_size=2 * PAIRS_PER_RANK)
    fit(config, stand_in_parts(), tmp_path / "single", progress=False)

    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    single = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")
    assert ddp["world_size"] == 2 and ddp["step"] == single["step"] == 8  # 64 pairs / 16 per global step x 2 epochs
    initial = stand_in_parts().model.state_dict()
    for key, value in single["model"].items():
        assert not torch.allclose(value, initial[key])  # it did train
        torch.testing.assert_close(ddp["model"][key], value, rtol=1e-5, atol=1e-6)
    assert len(ddp["rng"]["torch_ranks"]) == 2
