"""Classification as in the reference: ce training with accuracy validation, classifier PGD (issue 16 B)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from robrank.errors import ConfigError
from robrank.training.config import TrainConfig, learning_rate, resolve_config
from robrank.plugins import get_registry


def test_classifier_defaults_follow_the_reference_configs():
    cc2f2 = resolve_config(TrainConfig("mnist", "cc2f2", "ce"), registry=get_registry())
    assert (cc2f2.epochs, cc2f2.batch_size, cc2f2.lr, cc2f2.weight_decay, cc2f2.optimizer) == (16, 1000, 1e-3, 1e-7, "Adam")
    assert cc2f2.metric == "E" and cc2f2.milestones is None
    assert resolve_config(TrainConfig("fashion", "clenet", "ce"), registry=get_registry()).epochs == 10
    cifar = resolve_config(TrainConfig("cifar10", "cres18", "ce"), registry=get_registry())
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.optimizer, cifar.momentum) == (200, 256, 0.1, "SGD", 0.9)
    assert (cifar.weight_decay, cifar.milestones, cifar.lr_gamma) == (2e-4, [100, 150], 0.1)
    # what the user says wins over the backbone's recipe
    mine = resolve_config(TrainConfig("cifar10", "cres50", "ce", optimizer="Adam", lr=1e-3, epochs=3), registry=get_registry())
    assert (mine.optimizer, mine.lr, mine.epochs, mine.batch_size) == ("Adam", 1e-3, 3, 256)
    # ranking models are unchanged
    ranking = resolve_config(TrainConfig("mnist", "c2f2", "ptripletN"), registry=get_registry())
    assert (ranking.epochs, ranking.batch_size, ranking.optimizer, ranking.momentum) == (8, 128, "Adam", None)


def test_multistep_learning_rate():
    config = resolve_config(TrainConfig("cifar10", "cres18", "ce"), registry=get_registry())
    assert [learning_rate(config, e) for e in (0, 99, 100, 149, 150, 199)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


@pytest.mark.parametrize(
    "triple, message",
    [
        (("mnist", "cc2f2", "ptripletN"), "classification loss"),
        (("mnist", "c2f2", "ce"), "classifier backbone"),
    ],
)
def test_loss_and_backbone_must_agree(triple, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(TrainConfig(*triple), registry=get_registry())
    with pytest.raises(ConfigError, match="not implemented"):
        resolve_config(TrainConfig("mnist", "cc2f2", "ce", defense="act"), registry=get_registry())


def test_ce_loss_is_cross_entropy_of_the_logits():
    from robrank.losses import build_criterion, resolve_loss

    criterion = build_criterion(resolve_loss("ce", registry=get_registry()), registry=get_registry())
    logits, labels = torch.randn(6, 10), torch.arange(6)
    assert torch.equal(criterion(logits, labels), F.cross_entropy(logits, labels))


@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory) -> Path:
    """cc2f2 trained on digits for 3 short epochs through the CLI (about 95 % test accuracy)."""
    from click.testing import CliRunner

    from robrank.cli import cli

    run_dir = tmp_path_factory.mktemp("classifier") / "run"
    result = CliRunner().invoke(
        cli,
        ["train", "-C", "digits:cc2f2:ce", "--epochs", "3", "-b", "64", "--device", "cpu", "--num-workers", "0",
         "--run-dir", str(run_dir), "--no-progress"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output
    return run_dir


def test_trained_classifier_validates_with_accuracy(digits_classifier, robrank_cli):
    history = [json.loads(line) for line in (digits_classifier / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert [h["epoch"] for h in history] == [1, 2, 3] and "R@1" not in history[-1]
    assert history[-1]["accuracy"] > 0.8
    evaluated = robrank_cli("eval", str(digits_classifier), "--device", "cpu", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["accuracy"] == pytest.approx(100 * history[-1]["accuracy"])  # --json: percent


def test_pgd_lowers_the_accuracy_of_a_trained_classifier(digits_classifier, robrank_cli):
    from robrank.attacks import run_attack
    from robrank.data.loading import load_split
    from robrank.models.checkpoint import load_run

    out = robrank_cli("attack", str(digits_classifier), "-A", "PGD:eps=0.3:alpha=0.02:pgditer=8", "-D", "cpu", "--json", "-m", "1", "-b", "128")
    assert out.exit_code == 0, out.output
    untargeted = json.loads(out.stdout)
    assert untargeted["count"] == 128
    assert untargeted["adv"]["accuracy"] < 20 < 80 < untargeted["orig"]["accuracy"]  # percent
    assert untargeted["adv"]["loss"] > untargeted["orig"]["loss"]

    run, test = load_run(digits_classifier, registry=get_registry()), load_split("digits", "test", registry=get_registry())

    def attack(spec: str, count: int = 128, **options):
        return run_attack(run.model, test, spec, indices=range(count), progress=False, registry=get_registry(), **options)

    assert attack("PGD:eps=0.3:alpha=0.02:pgditer=8").adv == pytest.approx(untargeted["adv"])  # the CLI is the API
    small = attack("PGD:eps=0.05:alpha=0.01:pgditer=8")
    assert untargeted["adv"]["accuracy"] < small.adv["accuracy"] < small.orig["accuracy"]  # a larger budget does more
    targeted = attack("PGD:eps=0.3:alpha=0.02:pgditer=8:targeted=1")
    assert targeted.orig["target"] < 10 < 50 < targeted.adv["target"]
    # black-box and transfer apply to the classifier attacks unchanged
    nes = attack("PGD:eps=0.3:pgditer=2:nes=1", count=16)
    assert nes.adv["queries"] == 300 and nes.adv["loss"] > nes.orig["loss"]
    transfer = attack("PGD:eps=0.05:alpha=0.01:pgditer=8", surrogate=load_run(digits_classifier, registry=get_registry()).model)
    assert transfer.adv == small.adv
    # APGD keeps its best iterate by the attack's success measure: never less accurate-breaking
    # than its own start, and at the small budget at least as strong as fixed-step PGD
    apgd = attack("PGD:eps=0.05:alpha=0.01:pgditer=8:opt=apgd")
    assert apgd.adv["accuracy"] <= apgd.orig["accuracy"]
    assert apgd.adv["accuracy"] <= small.adv["accuracy"] + 100 / 128
    apgd_targeted = attack("PGD:eps=0.3:alpha=0.02:pgditer=8:targeted=1:opt=apgd")
    assert apgd_targeted.adv["target"] >= apgd_targeted.orig["target"]


def test_ranking_attacks_and_classifiers_do_not_mix(digits_classifier, tiny_run, robrank_cli):
    on_classifier = robrank_cli("attack", str(digits_classifier), "-A", "ES:eps=0.1", "-D", "cpu")
    assert on_classifier.exit_code == 2 and "PGD" in on_classifier.output and "Traceback" not in on_classifier.output
    on_ranking = robrank_cli("attack", str(tiny_run), "-A", "PGD:eps=0.1", "-D", "cpu")
    assert on_ranking.exit_code == 2 and "ranking attack" in on_ranking.output
    swipe = robrank_cli("swipe", str(digits_classifier), "-p", "rob28", "--device", "cpu", "-m", "1")
    assert swipe.exit_code == 2 and "classifier" in swipe.output


def test_robrank_run_refuses_a_classifier(robrank_cli, tmp_path):
    out = robrank_cli("run", "--dataset", "digits", "--backbone", "cc2f2", "--loss", "ce", "--run-dir", str(tmp_path / "r"))
    assert out.exit_code == 2 and "robrank attack" in out.output and "Traceback" not in out.output
