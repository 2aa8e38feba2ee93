"""The training engine: configs, loss goes down, determinism, exact resume, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from robrank.cli import cli
from robrank.errors import ConfigError, UnknownNameError
from robrank.io import load_checkpoint
from robrank.training import TrainConfig, parse_triple, resolve_config, train
from robrank.training.engine import build_parts, fit
from robrank.plugins import get_registry

# lenet on the built-in digits (1,433 train / 364 test images): a few steps take seconds
TINY = dict(dataset="digits", backbone="lenet", loss="ptripletN", batch_size=32, num_workers=0, device="cpu")


def tiny(tmp_path: Path, name: str, **overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, "run_dir": str(tmp_path / name), **overrides})


def weights(run_dir: str | Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")["model"]


# --------------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "text, backbone, defense, options",
    [
        ("mnist:c2f2:ptripletN", "c2f2", "none", {}),
        ("mnist:rc2f2:ptripletN", "rc2f2", "none", {}),
        ("fashion:rc2f2p:ptripletN", "rc2f2", "act", {}),
        ("fashion:rc2f2pf:ptripletN", "rc2f2", "act", {"pgditer": 1}),
        ("mnist:rc2f2d:ptripletN", "rc2f2", "est", {}),
        ("mnist:rc2f2df:ptripletN", "rc2f2", "est", {"pgditer": 1}),
        ("mnist:rc2f2e:ptripletN", "rc2f2", "ses", {}),
        ("cub:rres18p:ptripletN", "rres18", "act", {}),
    ],
)
def test_parse_triple(text, backbone, defense, options):
    triple = parse_triple(text, registry=get_registry())
    assert (triple.backbone, triple.defense, triple.defense_options) == (backbone, defense, options)
    assert triple.dataset == text.split(":")[0] and triple.loss == "ptripletN"


def test_parse_triple_errors():
    with pytest.raises(ConfigError, match="DATASET:MODEL:LOSS"):
        parse_triple("mnist:c2f2", registry=get_registry())
    with pytest.raises(UnknownNameError, match="registered: .*c2f2"):
        parse_triple("mnist:rc3f3:ptripletN", registry=get_registry())


def test_defaults_per_family():
    small = resolve_config(TrainConfig("mnist", "rc2f2", "ptripletN"), registry=get_registry())
    assert (small.backbone, small.epochs, small.batch_size, small.lr, small.weight_decay) == ("c2f2", 8, 128, 1e-3, 1e-7)
    assert (small.embedding_dim, small.validate_every, small.freeze_bn, small.metric, small.miner) == (512, 1, False, "N", "random")
    assert small.pretrained == "none" and small.optimizer == "Adam"
    assert resolve_config(TrainConfig("mnist", "lenet", "ptripletN"), registry=get_registry()).embedding_dim == 128
    big = resolve_config(TrainConfig("cub", "rres18", "ptripletN"), registry=get_registry())
    assert (big.epochs, big.batch_size, big.lr, big.weight_decay, big.freeze_bn) == (75, 56, 1e-5, 4e-4, True)
    assert (big.validate_every, big.val_batch_size, big.pretrained) == (5, 112, "imagenet")
    act = resolve_config(TrainConfig("fashion", "c2f2", "ptripletN", defense="ACT", defense_options={"pgditer": 8}), registry=get_registry())
    assert act.defense == "act" and act.defense_options == {"eps": 77 / 255, "alpha": 3 / 255, "pgditer": 8}
    act224 = resolve_config(TrainConfig("cub", "resnet18", "ptripletN", defense="act"), registry=get_registry())
    assert act224.defense_options == {"eps": 8 / 255, "alpha": 1 / 255, "pgditer": 32}
    explicit = resolve_config(TrainConfig("mnist", "c2f2", "triplet", metric="C", miner="semihard", lr=0.5, epochs=2), registry=get_registry())
    assert (explicit.lr, explicit.epochs, explicit.metric, explicit.miner) == (0.5, 2, "C", "semihard")


def test_config_errors():
    with pytest.raises(UnknownNameError):
        resolve_config(TrainConfig("mnist", "c2f2", "ptripletN", defense="nosuchdefense"), registry=get_registry())
    with pytest.raises(ConfigError, match="backbone 'resnet18' takes 3x224x224"):
        resolve_config(TrainConfig("mnist", "resnet18", "ptripletN"), registry=get_registry())
    with pytest.raises(ConfigError, match="batch-size"):
        resolve_config(TrainConfig("mnist", "c2f2", "ptripletN", batch_size=0), registry=get_registry())
    with pytest.raises(ConfigError, match="need a defense"):
        resolve_config(TrainConfig("mnist", "c2f2", "ptripletN", defense_options={"eps": 0.1}), registry=get_registry())
    with pytest.raises(ConfigError, match="optimizer"):
        resolve_config(TrainConfig("mnist", "c2f2", "ptripletN", optimizer="Adamm"), registry=get_registry())


def test_defense_incompatible_with_loss_fails_before_training(tmp_path):
    # ACT needs a triplet-style loss with raw(a, p, n); multi-similarity has none
    with pytest.raises(ConfigError, match="act"):
        train(tiny(tmp_path, "bad", loss="pmsN", defense="act", max_steps=1), progress=False, registry=get_registry())
    assert not (tmp_path / "bad" / "checkpoints").exists()


# ------------------------------------------------------------------------------- training


def _batch_loss(model, criterion, images, labels) -> float:
    torch.manual_seed(123)  # the same random negatives before and after
    with torch.no_grad():
        return float(criterion(model(images), labels))


def test_a_few_steps_lower_the_loss(tmp_path):
    config = resolve_config(tiny(tmp_path, "learn", max_steps=10, batch_size=32, validate_every=100), registry=get_registry())
    parts = build_parts(config, registry=get_registry())
    parts.test_set = None  # no validation needed here
    images = parts.train_set.images(torch.arange(0, 1400, 11))  # 128 images, pairs by label below
    labels = parts.train_set.labels[torch.arange(0, 1400, 11)]
    order = torch.argsort(labels, stable=True)
    images, labels = images[order], labels[order]
    keep = torch.cat([torch.nonzero(labels == c).flatten()[: (labels == c).sum() // 2 * 2] for c in labels.unique()])
    images, labels = images[keep], labels[keep]
    before = _batch_loss(parts.model, parts.criterion, images, labels)
    result = fit(config, parts, Path(config.run_dir), progress=False)
    parts.model.eval()
    after = _batch_loss(parts.model, parts.criterion, images, labels)
    assert result.steps == 10
    assert after < 0.7 * before


def test_same_seed_same_metrics_and_weights(tmp_path):
    a = train(tiny(tmp_path, "a", max_steps=4), progress=False, registry=get_registry())
    b = train(tiny(tmp_path, "b", max_steps=4), progress=False, registry=get_registry())
    c = train(tiny(tmp_path, "c", max_steps=4, seed=1), progress=False, registry=get_registry())
    assert a.metrics == b.metrics and set(a.metrics) == {"R@1", "R@2", "mAP", "mAP@R", "mAP@10", "NMI", "top_ties"}
    wa, wb, wc = weights(a.run_dir), weights(b.run_dir), weights(c.run_dir)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def small_parts(config: TrainConfig, n_train: int = 192, n_test: int = 100):
    """build_parts on the first images of digits (same model init and components)."""
    from robrank.data.base import TensorImageDataset

    parts = build_parts(config, registry=get_registry())
    parts.train_set = TensorImageDataset(parts.train_set.data[:n_train], parts.train_set.labels[:n_train])
    parts.test_set = TensorImageDataset(parts.test_set.data[:n_test], parts.test_set.labels[:n_test])
    return parts


def run_fit(tmp_path: Path, name: str, resume: bool = False, **overrides):
    config = resolve_config(tiny(tmp_path, name, **overrides), registry=get_registry())
    return fit(config, small_parts(config), Path(config.run_dir), resume=resume, progress=False)


def test_resume_equals_uninterrupted(tmp_path):
    # 192 pairs per epoch = 6 steps of 32 pairs
    full = run_fit(tmp_path, "full", epochs=2)
    assert (full.epochs, full.steps) == (2, 12)

    run_fit(tmp_path, "cut", epochs=1)  # one epoch, then "killed"
    resumed = run_fit(tmp_path, "cut", resume=True, epochs=2)
    assert (resumed.epochs, resumed.steps) == (2, 12)

    run_fit(tmp_path, "mid", epochs=2, max_steps=4)  # stopped inside epoch 1
    mid = run_fit(tmp_path, "mid", resume=True, epochs=2)
    assert mid.steps == 12

    reference = weights(full.run_dir)
    for run in (resumed, mid):
        other = weights(run.run_dir)
        assert all(torch.equal(reference[k], other[k]) for k in reference)
    assert resumed.metrics == full.metrics == mid.metrics
    lines = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]


def test_resume_refuses_changed_settings(tmp_path):
    train(tiny(tmp_path, "run", max_steps=1), progress=False, registry=get_registry())
    with pytest.raises(ConfigError, match="lr"):
        train(tiny(tmp_path, "run", max_steps=2, lr=0.1), resume=True, progress=False, registry=get_registry())
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny(tmp_path, "run", max_steps=1), progress=False, registry=get_registry())


def test_run_directory_contents(tmp_path):
    result = train(tiny(tmp_path, "run", max_steps=2, keep_epochs=True, epochs=1), progress=False, registry=get_registry())
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["config"]["backbone"] == "lenet" and saved["config"]["embedding_dim"] == 128
    assert saved["seed"] == 0 and saved["versions"]["torch"] == torch.__version__ and saved["device"] == "cpu"
    assert {"hardware", "git_commit"} <= set(saved) and "hostname" not in saved
    assert saved["command"][0] == "robrank"  # not this machine's path to the script
    assert (result.run_dir / "checkpoints" / "last.pt").is_file()
    assert not list(result.run_dir.glob("checkpoints/.*tmp"))


# ------------------------------------------------------------------------------------- CLI


def test_cli_train_and_eval(tmp_path):
    runner = CliRunner()
    run_dir = tmp_path / "cli"
    args = ["train", "-C", "digits:rlenet:ptripletN", "--batch-size", "16", "--max-steps", "2", "--num-workers", "0",
            "--device", "cpu", "--run-dir", str(run_dir), "--no-progress", "--seed", "3"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "R@1" in result.output and "NMI" in result.output
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    assert (saved["backbone"], saved["batch_size"], saved["seed"], saved["max_steps"]) == ("lenet", 16, 3, 2)

    evaluated = runner.invoke(cli, ["eval", str(run_dir), "--device", "cpu", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.output[evaluated.output.index("{"):])
    logged = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("R@1", "R@2", "mAP", "mAP@R", "NMI"):
        assert metrics[key] == pytest.approx(100 * logged[key], abs=1e-4)  # --json in percent, metrics.jsonl fractions

    resumed = runner.invoke(cli, ["train", "--resume", "--run-dir", str(run_dir), "--max-steps", "3", "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    assert "3 step(s)" in resumed.output


def test_cli_errors_are_one_line_exit_2(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "-C", "nosuch:c2f2:ptripletN", "--run-dir", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown dataset 'nosuch'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(cli, ["train", "--dataset", "digits"])
    assert result.exit_code == 2 and "missing --backbone" in result.output
    result = runner.invoke(cli, ["train", "-C", "digits:lenet:ptripletN", "--resume", "--run-dir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "has no checkpoints/last.pt" in result.output
    help_text = runner.invoke(cli, ["train", "--help"]).output
    assert "effective batch is" in " ".join(help_text.split())


def test_file_dataset_trains_through_a_dataloader(tmp_path):
    """Datasets read from files go through PairDataset + DataLoader with the same pair plan."""
    import numpy as np
    from PIL import Image
    from torch import nn

    from robrank.data.base import FileImageDataset
    from robrank.defenses import NoDefense
    from robrank.losses import build_criterion, resolve_loss
    from robrank.models.embedding import EmbeddingModel
    from robrank.training.engine import TrainParts

    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(24):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
        paths.append(path)
        labels.append(i % 3)

    def to_tensor(image):
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)

    files = FileImageDataset(paths, labels, to_tensor, image_size=8, channels=3)
    torch.manual_seed(0)
    model = EmbeddingModel(nn.Sequential(nn.Flatten(), nn.Linear(192, 8)), "N")
    criterion = build_criterion(resolve_loss("ptripletN", registry=get_registry()), registry=get_registry())
    parts = TrainParts(model, criterion, NoDefense(), files, files, 3)
    config = resolve_config(tiny(tmp_path, "files", epochs=2, batch_size=4, val_batch_size=7), registry=get_registry())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(config, parts, Path(config.run_dir), progress=False)
    assert result.steps == 12 and set(result.metrics) >= {"R@1", "mAP", "NMI"}
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())
