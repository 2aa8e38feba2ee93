"""Backbones: architectures and shapes, in-model normalisation, BN freezing, pretrained weights."""
from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torchvision
from torch import nn

from robrank.errors import ConfigError, UnknownNameError
from robrank.models.backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    batchnorm_frozen,
    build_backbone,
    freeze_batchnorm,
    unfreeze_batchnorm,
)
from robrank.plugins import get_registry, load_plugins, use_host


@pytest.fixture(scope="module")
def host():
    host = load_plugins(env={"ROBRANK_LOAD_PLUGINS": ""})
    with use_host(host):
        yield host


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _types(seq: nn.Sequential) -> list[type]:
    return [type(m) for m in seq]


def test_c2f2_architecture(host):
    net = build_backbone("c2f2", registry=get_registry())
    assert _types(net.features) == [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d]
    conv1, conv2 = net.features[0], net.features[3]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.padding) == (1, 32, (5, 5), (2, 2))
    assert (conv2.in_channels, conv2.out_channels, conv2.kernel_size, conv2.padding) == (32, 64, (5, 5), (2, 2))
    assert _types(net.head) == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    assert (net.head[1].in_features, net.head[1].out_features) == (3136, 1024)
    assert (net.head[3].in_features, net.head[3].out_features) == (1024, 512)
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 512)


def test_lenet_has_no_relu_after_convs(host):
    net = build_backbone("lenet", registry=get_registry())
    assert _types(net.features) == [nn.Conv2d, nn.MaxPool2d, nn.Conv2d, nn.MaxPool2d]
    assert (net.features[0].out_channels, net.features[2].out_channels) == (20, 50)
    assert _types(net.head) == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    assert (net.head[1].in_features, net.head[1].out_features, net.head[3].out_features) == (800, 500, 128)
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 128)


def test_small_backbones_do_not_normalise(host):
    net = build_backbone("c2f2", embedding_dim=16, registry=get_registry())
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(net(x), net.head(net.features(x)))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_classifiers_are_backbones_with_logits(host):
    cc2f2 = build_backbone("cc2f2", registry=get_registry())
    assert _types(cc2f2.head) == [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert cc2f2.head[3].p == pytest.approx(0.4)
    assert cc2f2(torch.rand(4, 1, 28, 28)).shape == (4, 10)
    assert build_backbone("cc2f2", embedding_dim=100, registry=get_registry())(torch.rand(1, 1, 28, 28)).shape == (1, 100)
    assert build_backbone("clenet", registry=get_registry())(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    cres18 = build_backbone("cres18", registry=get_registry())
    assert cres18(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    for name in ("cc2f2", "clenet", "cres18"):
        assert host.registry.get("backbones", name).task == "classification"
    assert host.registry.get("backbones", "c2f2").task == "retrieval"


@pytest.mark.parametrize(
    "name, features",
    [("resnet18", 512), ("rres50", 2048), ("rmnas10", 1280)],
)
def test_imagenet_backbones_shapes_and_heads(host, name, features):
    net = build_backbone(name, embedding_dim=64, registry=get_registry()).eval()
    head = net.net.fc if hasattr(net.net, "fc") else net.net.classifier
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (features, 64)
    size = 224 if name == "resnet18" else 64  # adaptive pooling: the head does not depend on it
    with torch.no_grad():
        assert net(torch.rand(1, 3, size, size)).shape == (1, 64)
    record = host.registry.get("backbones", name)
    assert (record.input_size, record.channels, record.pretrained) == (224, 3, ("imagenet",))


def test_224_backbones_normalise_inside_forward(host):
    net = build_backbone("resnet18", embedding_dim=8, registry=get_registry()).eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    mean_image = mean.expand(1, 3, 32, 32).clone()
    with torch.no_grad():
        # the per-channel mean image becomes all zeros, mean + std all ones
        assert torch.allclose(net(mean_image), net.net(torch.zeros(1, 3, 32, 32)), atol=1e-5)
        assert torch.allclose(net(mean_image + std), net.net(torch.ones(1, 3, 32, 32)), atol=1e-5)
        assert not torch.allclose(net(mean_image), net.net(mean_image), atol=1e-3)
    # gradients reach the pixels (attacks need them)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the constants are not part of checkpoints
    assert not any("normalize" in k for k in net.state_dict())


def test_freeze_batchnorm_keeps_bn_in_eval(host):
    net = build_backbone("resnet18", embedding_dim=8, registry=get_registry())
    freeze_batchnorm(net)
    net.train()
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)
    assert net.training and net.net.layer1.training  # everything else follows .train()
    before = [bn.running_mean.clone() for bn in bns]
    net(torch.rand(2, 3, 32, 32)).sum().backward()
    assert all(torch.equal(b, bn.running_mean) for b, bn in zip(before, bns))
    assert bns[0].weight.grad is not None  # affine parameters still train
    assert batchnorm_frozen(net)
    # survives copies and pickling (DDP, checkpoint-free snapshots)
    small = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    freeze_batchnorm(small)
    clone = copy.deepcopy(small)
    clone.train()
    assert not clone[1].training and clone[1].train() is clone[1]
    assert batchnorm_frozen(pickle.loads(pickle.dumps(small)))
    unfreeze_batchnorm(net)
    net.train()
    assert all(bn.training for bn in bns)
    net(torch.rand(2, 3, 32, 32))
    assert not all(torch.equal(b, bn.running_mean) for b, bn in zip(before, bns))


def test_unknown_backbone_and_bad_options(host):
    with pytest.raises(UnknownNameError, match="registered: .*resnet18"):
        build_backbone("resnet9000", registry=get_registry())
    with pytest.raises(ConfigError, match="c2f2.*no pretrained"):
        build_backbone("c2f2", pretrained="imagenet", registry=get_registry())
    with pytest.raises(ConfigError, match="available: imagenet"):
        build_backbone("resnet18", pretrained="places365", registry=get_registry())
    with pytest.raises(ConfigError, match="positive"):
        build_backbone("c2f2", embedding_dim=0, registry=get_registry())
    assert build_backbone("resnet18", pretrained="none", embedding_dim=4, registry=get_registry()).net.fc.out_features == 4


def _save_random_resnet18(path):
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), path)
    return reference


def test_pretrained_from_local_file(host, tmp_path):
    weights = tmp_path / "r18.pth"
    reference = _save_random_resnet18(weights)
    net = build_backbone("resnet18", pretrained="imagenet", weights=weights, registry=get_registry())
    assert torch.equal(net.net.conv1.weight, reference.conv1.weight)
    assert torch.equal(net.net.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert net.net.fc.out_features == 512  # the 1000-way fc was replaced after loading
    # weights without --pretrained imply the backbone's pretrained set
    implied = build_backbone("rres18", weights=weights, registry=get_registry())
    assert torch.equal(implied.net.conv1.weight, reference.conv1.weight)


def test_pretrained_from_the_hub_cache(host, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    reference = _save_random_resnet18(tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    net = build_backbone("resnet18", pretrained="imagenet", registry=get_registry())
    assert torch.equal(net.net.conv1.weight, reference.conv1.weight)


def test_missing_pretrained_weights_say_how_to_get_them(host, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ConfigError) as info:
        build_backbone("resnet18", pretrained="imagenet", registry=get_registry())
    message = str(info.value)
    assert "\n" not in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert str(tmp_path / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "--pretrained none" in message
    with pytest.raises(ConfigError, match="does not exist"):
        build_backbone("resnet18", weights=tmp_path / "nope.pth", registry=get_registry())


def test_wrong_or_corrupt_weight_files(host, tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(ConfigError, match="do not fit resnet50") as info:
        build_backbone("resnet50", weights=wrong, registry=get_registry())
    assert "\n" not in str(info.value)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot read ImageNet weights"):
        build_backbone("resnet18", weights=corrupt, registry=get_registry())


def test_registry_lists_bundled_backbones(monkeypatch):
    monkeypatch.setenv("ROBRANK_LOAD_PLUGINS", "")
    registry = load_plugins().registry
    bundled = {"c2f2", "lenet", "resnet18", "resnet50", "mnasnet10", "cc2f2", "clenet", "cres18"}
    assert set(registry.names("backbones")) >= bundled
    aliases = {"rc2f2": "c2f2", "rlenet": "lenet", "rres18": "resnet18", "rres50": "resnet50", "rmnas10": "mnasnet10"}
    for alias, name in aliases.items():
        assert registry.get("backbones", alias).name == name
    assert registry.get("backbones", "lenet").default_embedding_dim == 128
    assert registry.component("backbones", "c2f2").provider.plugin == "backbones-small"
    assert registry.component("backbones", "resnet18").provider.plugin == "backbones-imagenet"
