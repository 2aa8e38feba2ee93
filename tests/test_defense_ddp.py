"""Adversarial training (ACT, EST) under DDP with 2 gloo processes.

What is and is not equivalent (docs/training.md, docs/performance.md): N processes with
batch B equal one process with batch N*B only when the loss is a mean of per-pair terms.
ACT and EST train a triplet loss whose miner picks negatives *inside each rank's share*
(as the reference's Lightning DDP did), and EST's first inner step draws noise from each
rank's own generator, so their DDP runs follow another trajectory than any single process.
What must hold instead, and is checked here: the inner attacks run inside DDP's forward
without error, the loss is finite, a checkpoint is written, the replicas of all ranks end
with bit-identical weights (the gradients of the adversarial loss were all-reduced), and
those weights moved away from the initialisation.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from robrank.data.base import TensorImageDataset
from robrank.io import load_checkpoint
from robrank.models.embedding import EmbeddingModel
from robrank.training import TrainConfig
from robrank.training import distributed as dist_util
from robrank.training.engine import TrainParts, fit
from robrank.plugins import get_registry

CONFIG = dict(dataset="stand-in", backbone="stand-in", loss="ptripletN", metric="N", miner="spc2-random", epochs=1, lr=1e-2,
              weight_decay=0.0, embedding_dim=16, pretrained="none", freeze_bn=False, device="cpu", num_workers=0,
              validate_every=1, val_batch_size=64, batch_size=8, max_steps=3)


def parts(defense_name: str) -> TrainParts:
    from robrank.losses import build_criterion, resolve_loss
    from robrank.plugins import get_registry

    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (48, 1, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(48) % 6
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16))
    criterion = build_criterion(resolve_loss("ptripletN", registry=get_registry()), registry=get_registry())
    defense = get_registry().create("defenses", defense_name, eps=0.1, alpha=0.02, pgditer=3)
    return TrainParts(EmbeddingModel(backbone, "N"), criterion, defense, TensorImageDataset(images, labels), None, 6)


def _worker(rank: int, world_size: int, run_dir: str, defense_name: str) -> None:
    torch.set_num_threads(1)
    info = dist_util.from_env()
    built = parts(defense_name)
    try:
        fit(TrainConfig(**CONFIG, defense=defense_name), built, Path(run_dir), progress=False, info=info)
    finally:
        dist_util.destroy_process_group()
    torch.save({k: v.clone() for k, v in built.model.state_dict().items()}, Path(run_dir) / f"rank{rank}.pt")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("defense_name", ["act", "est"])
def test_defense_trains_under_two_gloo_processes(tmp_path, defense_name):
    run = tmp_path / defense_name
    run.mkdir()
    dist_util.spawn(_worker, 2, (str(run), defense_name))

    checkpoint = load_checkpoint(run / "checkpoints" / "last.pt")
    assert checkpoint["world_size"] == 2 and checkpoint["step"] == 3
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert math.isfinite(record["train_loss"])
    rank0, rank1 = (torch.load(run / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    initial = parts(defense_name).model.state_dict()
    moved = False
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), f"replicas diverged at {key}"
        assert torch.equal(value, checkpoint["model"][key])
        moved |= not torch.allclose(value, initial[key])
    assert moved, "the weights did not change: no gradient reached the model"
