"""Models trained elsewhere: ``--model``/``--weights`` on the CLI and ``robrank.evaluate``/``robrank.attack``.

The central check: a network trained here with plain PyTorch (pytorch-metric-learning's
triplet loss, not robrank's engine) and saved as a state_dict gives the *same* numbers
through ``robrank swipe --model``, through ``robrank.evaluate`` and when the same weights
are loaded as a robrank run.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import robrank
from robrank.errors import CheckpointError, ConfigError
from robrank.models.external import ModelSpec, file_sha256, load_model, parse_normalization, state_digest
from robrank_plugins.backbones.small_nets import LeNet
from robrank.swipe.schema import load_results
from robrank.plugins import get_registry

pml = pytest.importorskip("pytorch_metric_learning")

EMBED = 24
#: a quick swipe: one batch of 8 queries per attack
QUICK = ["-b", "8", "-m", "1", "--no-progress"]

NETDEF = '''
from torch import nn
from robrank_plugins.backbones.small_nets import LeNet


def make():
    return LeNet({embed})


def parts():
    """pytorch-metric-learning's pattern: a trunk (features) and an embedder on top."""
    return {{"trunk": nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()),
             "embedder": nn.Sequential(nn.Linear(8 * 12 * 12, 32), nn.ReLU(), nn.Linear(32, {embed}))}}


def fixed32():
    """A network that only takes 32x32 images."""
    return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, {embed}))


def rgb():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, {embed}))
'''.format(embed=EMBED)


def _train(net: nn.Module, steps: int = 25, seed: int = 0) -> nn.Module:
    """Plain PyTorch + pytorch-metric-learning: no robrank training code involved."""
    from pytorch_metric_learning import losses, miners

    from robrank.data.loading import load_split

    torch.manual_seed(seed)
    train = load_split("digits", "train", registry=get_registry())
    loss_fn, miner = losses.TripletMarginLoss(margin=0.2), miners.MultiSimilarityMiner()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        index = torch.randint(len(train), (64,), generator=generator)
        embeddings = net(train.images(index))
        labels = train.labels[index]
        loss = loss_fn(embeddings, labels, miner(embeddings, labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A LeNet trained with plain PyTorch, its state_dict file, and its definition file."""
    folder = tmp_path_factory.mktemp("plain")
    (folder / "netdef.py").write_text(NETDEF)
    sys.path.insert(0, str(folder))
    try:
        import netdef
    finally:
        sys.path.remove(str(folder))
    net = _train(netdef.make())
    torch.save(net.state_dict(), folder / "plain.pt")
    return {"net": net, "dir": folder, "weights": folder / "plain.pt", "model": f"{folder / 'netdef.py'}:make", "netdef": netdef}


def _as_run(folder: Path, net: nn.Module) -> Path:
    """The same weights as a robrank run directory (what robrank train would have written)."""
    from robrank.io import save_checkpoint, write_json
    from robrank.models import checkpoint

    config = {"dataset": "digits", "backbone": "lenet", "metric": "N", "embedding_dim": EMBED, "loss": "ptripletN"}
    run = folder / "run"
    write_json(run / "config.json", {"config": config})
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    save_checkpoint(run / "checkpoints" / "last.pt", {"format": checkpoint.FORMAT, "format_version": checkpoint.FORMAT_VERSION,
                                                       "config": config, "epoch": 1, "step": 1, "model": state})
    return run


def _numbers(payload: dict) -> list[tuple]:
    return [(a["spec"], a["count"], a["orig"], a["adv"]) for a in payload["attacks"]]


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result
    text = result.output.strip()
    assert "\n" not in text and "Traceback" not in text, text
    assert text.startswith("Error: "), text
    for needle in needles:
        assert needle in text, text


def test_plain_pytorch_model_same_numbers_cli_api_and_as_run(plain, robrank_cli, tmp_path):
    cli_out = tmp_path / "cli.json"
    result = robrank_cli("swipe", "--model", plain["model"], "--weights", str(plain["weights"]), "--metric", "N",
                         "--dataset", "digits", "--output", str(cli_out), *QUICK)
    assert result.exit_code == 0, result
    api = robrank.evaluate(plain["net"], dataset="digits", profile="rob28", metric="N", batch_size=8, max_batches=1)
    run = _as_run(tmp_path, plain["net"])
    result = robrank_cli("swipe", str(run), "-p", "rob28", *QUICK)
    assert result.exit_code == 0, result
    cli, as_run = load_results(cli_out, registry=get_registry()), load_results(run / "swipe-rob28.json", registry=get_registry())
    assert len(cli["attacks"]) == 9 and cli["finished"]
    assert _numbers(cli) == _numbers(api.payload) == _numbers(as_run)
    assert cli["ers"] == api.payload["ers"] == as_run["ers"]
    assert api.ers == pytest.approx(as_run["ers"]["ers"]) and set(api.raw) == set(as_run["ers"]["raw"])
    assert api["ES"].adv["r@1"] <= api["ES"].orig["r@1"]
    # the model source is recorded: spec, weights sha256, metric, normalisation, a digest of the weights used
    model = cli["model"]
    assert model["kind"] == "external" and model["spec"] == plain["model"] and model["metric"] == "N"
    assert model["normalize"]["name"] == "none" and model["weights"][0]["sha256"] == file_sha256(plain["weights"])
    assert model["sha256"] == api.payload["model"]["sha256"] == state_digest(plain["net"])
    # .save writes the same schema robrank report reads
    saved = api.save(tmp_path / "api.json")
    assert load_results(saved, registry=get_registry())["ers"] == cli["ers"]
    report = robrank_cli("report", str(cli_out))
    assert report.exit_code == 0 and "netdef.py:make" in report.output and "weights sha256" in report.output


def test_eval_same_metrics_through_model_and_run(plain, robrank_cli, tmp_path, monkeypatch):
    run = _as_run(tmp_path, plain["net"])
    monkeypatch.chdir(plain["dir"])  # MODULE:CALLABLE is imported from the working directory
    via_model = robrank_cli("eval", "--model", "netdef:make", "--weights", str(plain["weights"]), "--metric", "N",
                            "--dataset", "digits", "-b", "64", "--json")
    via_run = robrank_cli("eval", str(run), "-b", "64", "--json")
    assert via_model.exit_code == 0 and via_run.exit_code == 0, (via_model, via_run)
    metrics_model, metrics_run = json.loads(via_model.stdout), json.loads(via_run.stdout)
    for key in ("R@1", "R@2", "mAP", "NMI"):
        assert metrics_model[key] == metrics_run[key]
    assert metrics_model["R@1"] > 50  # percent; trained: far above chance (10)
    assert metrics_model["model"]["metric"] == "N"


class OneAttackProfile:
    """A one-attack profile: resume checks need a results file, not nine attacks."""

    @robrank.hookimpl
    def register_profiles(self, register):
        register(robrank.ProfileRecord(name="one", factory=lambda: ["CA:pm=+:W=1:pgditer=2"], summary="one quick attack"))


@pytest.fixture
def one_profile(register_plugin):
    with register_plugin(OneAttackProfile()):
        yield "one"


def test_resume_refuses_a_different_model(plain, robrank_cli, tmp_path, one_profile):
    out = tmp_path / "out.json"
    base = ["swipe", "--model", plain["model"], "--weights", str(plain["weights"]), "--dataset", "digits", "-p", one_profile,
            "--output", str(out), *QUICK]
    assert robrank_cli(*base, "--metric", "N").exit_code == 0
    before = out.read_bytes()
    _one_line_error(robrank_cli(*base, "--metric", "E"), "another model", "metric")
    _one_line_error(robrank_cli(*base, "--metric", "N", "--normalize", "0.5,0.5"), "another model", "normalize")
    other = tmp_path / "other.pt"
    torch.save(_train(plain["netdef"].make(), steps=2, seed=1).state_dict(), other)
    _one_line_error(robrank_cli("swipe", "--model", plain["model"], "--weights", str(other), "--dataset", "digits",
                                "-p", one_profile, "--output", str(out), "--metric", "N", *QUICK), "another model")
    assert out.read_bytes() == before
    # the same model again: a finished file is left as it is
    assert robrank_cli(*base, "--metric", "N").exit_code == 0 and out.read_bytes() == before


def test_safetensors_with_nested_key_and_module_prefix(plain, robrank_cli, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "ddp.safetensors"
    save_file({f"model.module.{k}": v.contiguous() for k, v in plain["net"].state_dict().items()}, str(path))
    spec = ModelSpec.create(plain["model"], weights=str(path), weights_key="model", strip_prefix="module.", metric="N", dataset="digits")
    loaded = load_model(spec, registry=get_registry())
    assert state_digest(loaded.model.backbone.net) == state_digest(plain["net"])
    result = robrank_cli("eval", "--model", plain["model"], "--weights", str(path), "--weights-key", "model",
                         "--strip-prefix", "module.", "--metric", "N", "--dataset", "digits", "--json")
    assert result.exit_code == 0, result
    assert json.loads(result.stdout)["model"]["weights"][0]["key"] == "model"
    # without the key the error names the fix
    _one_line_error(robrank_cli("eval", "--model", plain["model"], "--weights", str(path), "--metric", "N", "--dataset", "digits"),
                    "do not fit", "'model.module.")


def test_nested_pt_without_key_names_the_key(plain, robrank_cli, tmp_path):
    path = tmp_path / "nested.pt"
    torch.save({"epoch": 3, "state_dict": plain["net"].state_dict()}, path)
    _one_line_error(robrank_cli("eval", "--model", plain["model"], "--weights", str(path), "--metric", "N", "--dataset", "digits"),
                    "--weights-key state_dict")


def test_torchscript_and_exported_program(plain, robrank_cli, tmp_path):
    net = plain["net"]
    example = torch.rand(2, 1, 28, 28)
    scripted = tmp_path / "net.ts.pt"
    torch.jit.save(torch.jit.trace(net, example), str(scripted))
    exported = tmp_path / "net.pt2"
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(net, (example,), dynamic_shapes=({0: batch},)), str(exported))
    reference = robrank_cli("eval", "--model", plain["model"], "--weights", str(plain["weights"]), "--metric", "N",
                            "--dataset", "digits", "--json")
    expected = json.loads(reference.stdout)
    for path in (scripted, exported):
        result = robrank_cli("eval", "--model", str(path), "--metric", "N", "--dataset", "digits", "--json")
        assert result.exit_code == 0, result
        got = json.loads(result.stdout)
        assert got["R@1"] == pytest.approx(expected["R@1"], abs=1e-9) and got["mAP"] == pytest.approx(expected["mAP"], rel=1e-5)
        assert got["model"]["sha256"] == expected["model"]["sha256"] or path == exported  # same tensors, other names for export
    # an attack runs through the loaded archive (input gradients flow)
    out = robrank.attack("CA:pm=+:W=1", load_model(ModelSpec.create(str(exported), metric="N", dataset="digits"), registry=get_registry()).model,
                         gallery="digits", eps=0.1, alpha=0.02, pgditer=4)
    from robrank.data.loading import load_split

    split = load_split("digits", "test", registry=get_registry())
    result = out(split.images(torch.arange(8)), split.labels[:8], index=torch.arange(8))
    assert result.adv["prank"] < result.orig["prank"]


def test_pml_trunk_and_embedder(plain, robrank_cli, tmp_path):
    parts = plain["netdef"].parts()
    model = nn.Sequential(parts["trunk"], parts["embedder"])
    _train(model, steps=10)
    torch.save(parts["trunk"].state_dict(), tmp_path / "trunk_best1.pth")
    torch.save(parts["embedder"].state_dict(), tmp_path / "embedder_best1.pth")
    result = robrank_cli("eval", "--model", f"{plain['dir'] / 'netdef.py'}:parts", "--weights", f"trunk={tmp_path / 'trunk_best1.pth'}",
                         "--weights", f"embedder={tmp_path / 'embedder_best1.pth'}", "--metric", "C", "--dataset", "digits", "--json")
    assert result.exit_code == 0, result
    got = json.loads(result.stdout)
    assert [w["target"] for w in got["model"]["weights"]] == ["trunk", "embedder"]
    # the Python API takes the (trunk, embedder) pair as it is
    results = robrank.evaluate(parts, dataset="digits", profile="rob28", metric="C", batch_size=8, max_batches=1)
    assert results.payload["model"]["sha256"] == got["model"]["sha256"]
    assert results.ers is not None and 0.0 <= results.ers <= 100.0


def test_timm_and_torchvision_random_weights(robrank_cli, tmp_path, monkeypatch):
    pytest.importorskip("timm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    result = robrank_cli("eval", "--model", "timm:resnet10t", "--embedding-dim", "16", "--gray-to-rgb", "--metric", "N",
                         "--dataset", "digits", "--json")
    assert result.exit_code == 0, result
    got = json.loads(result.stdout)["model"]
    import timm

    assert got["output_dim"] == 16
    assert got["normalize"]["mean"] == list(timm.create_model("resnet10t").pretrained_cfg["mean"])  # its own statistics by default
    kept = load_model(ModelSpec.create("torchvision:resnet18", metric="E", dataset="digits", gray_to_rgb=True, normalize="none"), registry=get_registry())
    assert kept.source["output_dim"] == 1000 and kept.source["normalize"]["name"] == "none"  # head kept as is
    dropped = load_model(ModelSpec.create("torchvision:resnet18", metric="E", dataset="digits", gray_to_rgb=True, embedding_dim=0), registry=get_registry())
    assert dropped.source["output_dim"] == 512 and dropped.source["normalize"]["mean"] == [0.485, 0.456, 0.406]
    assert not (tmp_path / "torch-home").exists()  # nothing was downloaded
    # normalisation happens inside the wrapper: attacks see [0, 1] pixels
    x = torch.rand(2, 1, 28, 28)
    net = dropped.model.backbone.net
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(dropped.model(x), net((x.expand(-1, 3, -1, -1) - mean) / std))
    # a torchvision model fed gray images without --gray-to-rgb: one line naming the fix
    _one_line_error(robrank_cli("eval", "--model", "torchvision:resnet18", "--metric", "N", "--dataset", "digits"), "--gray-to-rgb")
    # and the attack engine runs end to end through a timm model
    out = tmp_path / "timm.json"
    result = robrank_cli("attack", "--model", "timm:resnet10t", "--embedding-dim", "8", "--gray-to-rgb", "--metric", "N",
                         "--dataset", "digits", "-A", "QA:pm=+:M=1:eps=0.1:alpha=0.05:pgditer=2", "-b", "4", "-m", "1",
                         "--no-progress", "--json", "--save-adversarial", str(out.with_suffix("")))
    assert result.exit_code == 0, result
    assert json.loads(result.stdout)["count"] == 4


def test_head_replacement_takes_weights_of_either_head(tmp_path):
    """ImageNet-style weights (original head) load before the head is replaced; fine-tuned ones after."""
    import torchvision

    torch.manual_seed(0)
    original = torchvision.models.resnet18(weights=None)
    torch.save(original.state_dict(), tmp_path / "imagenet.pt")
    options = {"metric": "N", "dataset": "digits", "gray_to_rgb": True, "embedding_dim": 16}
    net = load_model(ModelSpec.create("torchvision:resnet18", weights=str(tmp_path / "imagenet.pt"), **options), registry=get_registry()).model.backbone.net
    assert torch.equal(net.conv1.weight, original.conv1.weight) and net.fc.out_features == 16
    torch.save(net.state_dict(), tmp_path / "tuned.pt")
    again = load_model(ModelSpec.create("torchvision:resnet18", weights=str(tmp_path / "tuned.pt"), **options), registry=get_registry())
    assert again.source["sha256"] == state_digest(net)
    with pytest.raises(CheckpointError, match="with --embedding-dim 8: 'fc.weight' has shape"):
        load_model(ModelSpec.create("torchvision:resnet18", weights=str(tmp_path / "tuned.pt"), **{**options, "embedding_dim": 8}), registry=get_registry())


def test_save_adversarial(plain, robrank_cli, tmp_path):
    folder = tmp_path / "adv"
    result = robrank_cli("attack", "--model", plain["model"], "--weights", str(plain["weights"]), "--metric", "N",
                         "--dataset", "digits", "-A", "CA:pm=+:W=1:eps=0.1:alpha=0.02:pgditer=5", "-b", "8", "-m", "2",
                         "--no-progress", "--save-adversarial", str(folder))
    assert result.exit_code == 0, result
    from robrank.attacks.adversarial import load_adversarial
    from robrank.data.loading import load_split

    saved = load_adversarial(folder)
    assert saved["indices"].tolist() == list(range(16)) and saved["spec"] == "CA:pm=+:W=1:eps=0.1:alpha=0.02:pgditer=5"
    clean = load_split("digits", "test", registry=get_registry()).images(saved["indices"])
    delta = saved["adversarial"] - clean
    assert float(delta.abs().max()) <= 0.1 + 1e-6 and float(delta.abs().max()) > 0.05
    assert 0.0 <= float(saved["adversarial"].min()) and float(saved["adversarial"].max()) <= 1.0
    assert (folder / "examples.png").is_file() and len(list(folder.glob("adversarial-*.png"))) == 8
    # the saved images are the attack's: re-embedding them reproduces its adversarial rank
    atk = robrank.attack("CA:pm=+:W=1:eps=0.1:alpha=0.02:pgditer=5", plain["net"], gallery="digits", metric="N")
    again = atk(clean, saved["labels"], index=saved["indices"])
    torch.testing.assert_close(again.adversarial, saved["adversarial"])


def test_attack_object_matches_the_runner(plain):
    """atk(images, labels, index=...) perturbs exactly as run_attack does, and returns the images."""
    from robrank.attacks import run_attack
    from robrank.data.loading import load_split

    split = load_split("digits", "test", registry=get_registry())
    atk = robrank.attack("QA", plain["net"], gallery="digits", metric="N", pm="-", M=1, eps=0.1, alpha=0.02, pgditer=5)
    assert atk.spec == "QA:pm=-:M=1:eps=0.1:alpha=0.02:pgditer=5"
    index = torch.arange(12)
    out = atk(split.images(index), split.labels[index], index=index)
    assert out.adversarial.shape == (12, 1, 28, 28)
    reference = run_attack(atk.model, split, atk.spec, gallery=atk.gallery, batch_size=12, indices=index, progress=False, registry=get_registry())
    assert out.orig == pytest.approx(reference.orig) and out.adv == pytest.approx(reference.adv)
    # a gallery from tensors the user holds equals the dataset's
    images, labels = split.images(torch.arange(len(split))), split.labels
    mine = robrank.gallery(plain["net"], (images, labels), metric="N")
    torch.testing.assert_close(mine.embeddings, atk.gallery.embeddings)
    with pytest.raises(ConfigError, match=r"does not accept the gallery images \(1, 32, 32\)"):
        robrank.gallery(plain["net"], (torch.rand(4, 1, 32, 32), torch.zeros(4)), metric="N")
    reused = robrank.attack("QA:pm=-:M=1:eps=0.1:alpha=0.02:pgditer=5", plain["net"], gallery=mine, metric="N")
    assert reused(split.images(index), split.labels[index], index=index).adv == pytest.approx(out.adv)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--weights", "{other}"], ("do not fit", "missing 8 key(s), first 'features.0.weight' (model shape (20, 1, 5, 5))", "unexpected 2 key(s), first '0.weight' (file shape (2, 1, 3, 3))")),
        (["--weights", "{narrow}"], ("do not fit", "'head.3.weight' has shape (8, 500)", "expects (24, 500)")),
        (["--model", "{fixed32}"], ("does not accept digits images (1x28x28)",)),
        (["--model", "{rgb}"], ("does not accept", "--gray-to-rgb")),
        (["--weights", "{pickled}"], ("carries pickled objects", "never unpickles code")),
        (["--model", "{pickled}"], ("pickled Python object",)),
        (["--model", "{weights}"], ("holds only weights",)),
        (["--normalize", "0.5"], ("MEAN,STD",)),
        (["--embedding-dim", "4"], ("timm: and torchvision:",)),
    ],
    ids=["wrong-key", "wrong-shape", "input-size", "channels", "pickled-weights", "pickled-model", "state-as-model", "normalize", "head"],
)
@pytest.mark.parametrize("command", ["swipe", "attack"])
def test_bad_input_is_one_line_exit_2_nothing_written(plain, robrank_cli, tmp_path, args, needles, command):
    other = nn.Sequential(nn.Conv2d(1, 2, 3))
    torch.save(other.state_dict(), tmp_path / "other.pt")
    torch.save(LeNet(8).state_dict(), tmp_path / "narrow.pt")
    torch.save(plain["net"], tmp_path / "pickled.pt")  # a whole module: pickled code
    values = {"other": tmp_path / "other.pt", "narrow": tmp_path / "narrow.pt", "pickled": tmp_path / "pickled.pt",
              "weights": plain["weights"], "fixed32": f"{plain['dir'] / 'netdef.py'}:fixed32", "rgb": f"{plain['dir'] / 'netdef.py'}:rgb"}
    options = {"--model": plain["model"], "--weights": str(plain["weights"]), "--metric": "N", "--dataset": "digits"}
    given = [a.format(**values) for a in args]
    options.update(dict(zip(given[::2], given[1::2])))
    if given[0] == "--model" and "--weights" not in args:
        options.pop("--weights")
    flat = [x for kv in options.items() for x in kv]
    out = tmp_path / "out"
    tail = ["--output", str(out)] if command == "swipe" else ["-A", "CA:pm=+:W=1", "--save-adversarial", str(out)]
    _one_line_error(robrank_cli(command, *flat, *tail, *QUICK), *needles)
    assert not out.exists()


def test_missing_metric_and_dataset_are_one_line_errors(plain, robrank_cli, tmp_path):
    out = tmp_path / "out.json"
    _one_line_error(robrank_cli("swipe", "--model", plain["model"], "--dataset", "digits", "--output", str(out)), "--metric is required")
    _one_line_error(robrank_cli("eval", "--model", plain["model"], "--metric", "N"), "--dataset is required")
    _one_line_error(robrank_cli("eval", "--weights", "x.pt"), "RUN_OR_CKPT")
    _one_line_error(robrank_cli("attack", str(tmp_path), "--model", plain["model"], "-A", "ES"), "not both")
    assert not out.exists()
    with pytest.raises(ConfigError, match="metric= is required"):
        robrank.evaluate(plain["net"], dataset="digits")


def test_normalization_parsing():
    assert parse_normalization("imagenet").mean == (0.485, 0.456, 0.406)
    assert parse_normalization("0.1307,0.3081").std == (0.3081,)
    per_channel = parse_normalization("0.5/0.4/0.3,0.2/0.2/0.2")
    assert per_channel.mean == (0.5, 0.4, 0.3) and per_channel.std == (0.2, 0.2, 0.2)
    assert parse_normalization("none").active is False and parse_normalization(None) is None
    with pytest.raises(ConfigError, match="same number"):
        parse_normalization("0.5/0.5,0.2")


def test_import_robrank_stays_light():
    code = "import sys, robrank; assert 'torch' not in sys.modules, 'torch'; assert callable(robrank.evaluate); print('ok')"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "ok"


def test_show_draws_a_model_from_elsewhere_as_it_draws_the_same_weights_as_a_run(plain, robrank_cli, tmp_path):
    pytest.importorskip("matplotlib")
    run = _as_run(tmp_path, plain["net"])
    args = ("-A", "QA:pm=+:M=1:eps=0.1:alpha=0.05:pgditer=2", "--queries", "0,5", "-k", "3", "-D", "cpu")
    via_model = robrank_cli("show", "--model", plain["model"], "--weights", str(plain["weights"]), "--metric", "N",
                            "--dataset", "digits", *args, "--output", str(tmp_path / "model.svg"))
    assert via_model.exit_code == 0, via_model.output
    via_run = robrank_cli("show", str(run), *args, "--output", str(tmp_path / "run.svg"))
    assert via_run.exit_code == 0, via_run.output
    assert (tmp_path / "model.svg").read_bytes() == (tmp_path / "run.svg").read_bytes()
    _one_line_error(robrank_cli("show", "--model", plain["model"], "--weights", str(plain["weights"]), "--dataset", "digits", *args),
                    "--metric")



def test_sweep_cells_take_a_model_from_elsewhere_beside_a_run(plain, robrank_cli, tmp_path, monkeypatch):
    from robrank.sweep import sweep_states

    run = _as_run(tmp_path, plain["net"])
    direct = tmp_path / "direct.json"
    model_args = ("--model", plain["model"], "--weights", str(plain["weights"]), "--metric", "N", "--dataset", "digits")
    assert robrank_cli("swipe", *model_args, "--output", str(direct), *QUICK).exit_code == 0
    monkeypatch.chdir(tmp_path)  # the cell keeps absolute paths: it runs from any directory
    sweep = tmp_path / "sweep"
    result = robrank_cli("sweep", str(run), *model_args, "-p", "rob28", "-b", "8", "-m", "1", "-D", "cpu", "-j", "1", "--dir", str(sweep))
    assert result.exit_code == 0, result.output
    states = sweep_states(sweep)
    assert sorted(s.cell.source for s in states) == ["model", "run"] and all(s.state == "done" for s in states)
    (model_cell,) = [s.cell for s in states if s.cell.source == "model"]
    assert model_cell.id.startswith("netdef_make-")
    cell_results = load_results(sweep / "cells" / model_cell.id / "swipe.json", registry=get_registry())
    assert _numbers(cell_results) == _numbers(load_results(direct, registry=get_registry())) and cell_results["model"]["kind"] == "external"
    rerun = robrank_cli("sweep", "--dir", str(sweep))  # finished cells, the model's included, are not run again
    assert rerun.exit_code == 0 and "nothing to run" in rerun.output
    _one_line_error(robrank_cli("sweep", "--model", plain["model"], "--metric", "N", "--dataset", "digits", "-p", "rob28",
                                "--weights", str(tmp_path / "missing.pt"), "--dir", str(tmp_path / "s2")), "missing.pt")


@pytest.mark.timeout(400)  # a hang guard: two spawned processes on a loaded 2-core machine
def test_swipe_devices_shards_a_model_from_elsewhere_like_one_process(plain, robrank_cli, tmp_path):
    """The spec (not a run directory) crosses into the spawned processes; rank 0 alone writes the file."""
    model_args = ("--model", plain["model"], "--weights", str(plain["weights"]), "--metric", "N", "--dataset", "digits")
    quick = ("-b", "4", "-m", "2", "--no-progress", "-D", "cpu")  # two batches: one per rank
    single, sharded = tmp_path / "single.json", tmp_path / "sharded.json"
    assert robrank_cli("swipe", *model_args, *quick, "--output", str(single)).exit_code == 0
    result = robrank_cli("swipe", *model_args, *quick, "--devices", "2", "--output", str(sharded))
    assert result.exit_code == 0, result.output
    one, two = load_results(single, registry=get_registry()), load_results(sharded, registry=get_registry())
    assert two["options"]["world_size"] == 2 and two["model"] == one["model"] and two["model"]["kind"] == "external"
    for (spec, count, orig, adv), (spec2, count2, orig2, adv2) in zip(_numbers(one), _numbers(two), strict=True):
        assert spec == spec2 and count == count2 == 8
        for mine, theirs in ((orig, orig2), (adv, adv2)):
            assert mine.keys() == theirs.keys() and all(math.isclose(mine[k], theirs[k], rel_tol=1e-9, abs_tol=1e-12) for k in mine)
