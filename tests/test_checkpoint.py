"""Checkpoints: plain-data round trip, weights_only loading, and one-line errors for bad files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robrank.errors import CheckpointError
from robrank.io import load_checkpoint, save_checkpoint
from robrank.models.checkpoint import FORMAT, find_checkpoint, load_run
from robrank.training import TrainConfig, train
from robrank.plugins import get_registry


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    config = TrainConfig(dataset="digits", backbone="lenet", loss="ptripletN", batch_size=16, max_steps=2,
                         num_workers=0, device="cpu", run_dir=str(root / "run"), keep_epochs=True, epochs=1)
    return train(config, progress=False, registry=get_registry()).run_dir


def test_round_trip_with_weights_only(run_dir):
    path = run_dir / "checkpoints" / "last.pt"
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain data only: no code runs
    assert raw["format"] == FORMAT and raw["format_version"] == 1
    assert (raw["epoch"], raw["step"], raw["epoch_step"]) == (0, 2, 2)  # stopped inside epoch 1
    assert raw["config"]["backbone"] == "lenet" and isinstance(raw["optimizers"], list)
    assert isinstance(raw["rng"]["torch"], torch.Tensor) and isinstance(raw["rng"]["generator"], torch.Tensor)

    loaded = load_run(run_dir, registry=get_registry())
    assert loaded.checkpoint == path and loaded.run_dir == run_dir
    assert (loaded.dataset, loaded.metric, loaded.step) == ("digits", "N", 2)
    assert not loaded.model.training
    state = loaded.model.state_dict()
    assert all(torch.equal(state[k], raw["model"][k]) for k in state)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(loaded.model.embed(x).norm(dim=1), torch.ones(4))
    assert load_run(path, registry=get_registry()).checkpoint == path  # a file works as well as the run directory


def _rewrite(run_dir: Path, tmp_path: Path, change) -> Path:
    payload = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    change(payload)
    out = tmp_path / "changed.pt"
    save_checkpoint(out, payload)
    return out


def test_incompatible_checkpoints(run_dir, tmp_path):
    def other_backbone(p):
        p["config"]["backbone"] = "c2f2"
        p["config"]["embedding_dim"] = 512

    with pytest.raises(CheckpointError, match="missing .* key"):
        load_run(_rewrite(run_dir, tmp_path, other_backbone), registry=get_registry())

    def other_dim(p):
        p["config"]["embedding_dim"] = 64

    with pytest.raises(CheckpointError, match=r"shape \(128, 500\).*expects \(64, 500\)"):
        load_run(_rewrite(run_dir, tmp_path, other_dim), registry=get_registry())

    def unknown_backbone(p):
        p["config"]["backbone"] = "mysterynet"

    with pytest.raises(CheckpointError, match="backbone 'mysterynet'.*registered: .*lenet"):
        load_run(_rewrite(run_dir, tmp_path, unknown_backbone), registry=get_registry())

    def newer(p):
        p["format_version"] = 99

    with pytest.raises(CheckpointError, match="format version 99"):
        load_run(_rewrite(run_dir, tmp_path, newer), registry=get_registry())

    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(CheckpointError, match="not a robrank checkpoint"):
        load_run(plain, registry=get_registry())

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="never unpickles code"):
        load_run(evil, registry=get_registry())

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((run_dir / "checkpoints" / "last.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_run(truncated, registry=get_registry())


def test_find_checkpoint(tmp_path, run_dir):
    with pytest.raises(CheckpointError, match="has no checkpoint"):
        find_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "nope")
    epochs = tmp_path / "only-epochs" / "checkpoints"
    epochs.mkdir(parents=True)
    for e in (2, 10, 9):
        (epochs / f"epoch-{e}.pt").write_bytes(b"x")
    assert find_checkpoint(tmp_path / "only-epochs").name == "epoch-10.pt"


def test_corrupt_and_code_carrying_checkpoints_get_different_one_line_errors(tmp_path):
    import collections

    import torch

    from robrank.errors import CheckpointError
    from robrank.io import load_checkpoint

    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="corrupt or not a torch file"):
        load_checkpoint(garbage)
    evil = tmp_path / "evil.pt"
    torch.save({"state": collections.OrderedDict(), "hook": print}, evil)  # a callable smuggled in
    with pytest.raises(CheckpointError, match="never unpickles code") as err:
        load_checkpoint(evil)
    assert "\n" not in str(err.value)
