"""Building backbones from the registry, input normalisation, pretrained weights, BN freezing.

A backbone maps pixels in [0, 1] to *raw* embeddings and normalises its input itself
(ImageNet mean/std for the 224 models), so attacks and defenses always perturb pixels.
A classifier (``cc2f2``, ``clenet``, ``cres18``) is just a backbone whose output is logits:
``embedding_dim`` is then the number of classes.

Pretrained ImageNet weights are never downloaded: they come from a local file
(``weights=PATH``) or from the torch hub cache, where torchvision itself would have put them.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..plugins import Registry
from ..records import NO_WEIGHTS
from ..io import load_checkpoint

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: How the CLI spells "no pretrained weights".
NO_PRETRAINED = ("", NO_WEIGHTS, "scratch")


class Normalize(nn.Module):
    """(x - mean) / std per channel, inside the model so that gradients reach the pixels.

    The reference ran this under ``no_grad`` unless ``model.wantsgrad`` was set; here it is
    always differentiable (no flag to forget). The constants are non-persistent buffers:
    they follow ``.to(device)`` but stay out of checkpoints.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _frozen_train(module: nn.Module, mode: bool = True) -> nn.Module:
    """``train`` replacement for a frozen BatchNorm: it stays in eval mode."""
    return module


def freeze_batchnorm(module: nn.Module) -> None:
    """Put every BatchNorm of ``module`` in eval mode and keep it there (reference §2).

    ``.train()`` on the BN layers becomes a no-op (the ICML'20 practice the reference
    follows for all 224 models), so running statistics stay those of the pretrained
    network while the affine parameters still train. A ``functools.partial`` of a module
    function is used instead of a lambda so that the model can still be deep-copied and
    pickled.
    """
    for bn in module.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            nn.Module.train(bn, False)
            bn.train = functools.partial(_frozen_train, bn)  # type: ignore[method-assign]


def unfreeze_batchnorm(module: nn.Module) -> None:
    """Undo :func:`freeze_batchnorm` (BN follows ``.train()``/``.eval()`` again)."""
    for bn in module.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm) and "train" in bn.__dict__:
            del bn.__dict__["train"]


def batchnorm_frozen(module: nn.Module) -> bool:
    """True when every BatchNorm of ``module`` is frozen (and there is at least one)."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return bool(bns) and all("train" in bn.__dict__ for bn in bns)


def hub_checkpoint_path(file_name: str) -> Path:
    """Where torchvision caches a weight file: ``<torch hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def load_imagenet_state(arch: str, file_name: str, url: str, weights: str | Path | None) -> dict[str, torch.Tensor]:
    """The ImageNet state_dict of ``arch``: from ``weights`` or the hub cache, never the network."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"weights file {path} for {arch} does not exist; download {url} and pass its path, "
                f"or train from scratch with --pretrained none"
            )
    else:
        path = hub_checkpoint_path(file_name)
        if not path.is_file():
            raise ConfigError(
                f"ImageNet weights for {arch} are not in the torch hub cache: download {url} to {path} "
                f"(or pass --weights PATH), or train from scratch with --pretrained none"
            )

    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        raise ConfigError(f"cannot read ImageNet weights for {arch} from {path}: {exc}") from exc
    for key in ("state_dict", "model"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
    return state


def apply_state(net: nn.Module, state: dict[str, Any], arch: str, source: str | Path) -> None:
    """``load_state_dict`` with a one-line error naming the file when it does not fit."""
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])
        raise ConfigError(f"weights in {source} do not fit {arch}: {detail[:300]}") from exc


def _normalise_pretrained(pretrained: str | None) -> str | None:
    if pretrained is None:
        return None
    text = str(pretrained).strip()
    return None if text.lower() in NO_PRETRAINED else text


def check_pretrained(
    name: str, available: Sequence[str], pretrained: str | None, weights: str | Path | None
) -> str | None:
    """Validate a pretrained choice against what a backbone offers; returns the choice.

    ``weights`` without ``pretrained`` means the backbone's (first) pretrained set.
    """
    pretrained = _normalise_pretrained(pretrained)
    if pretrained is None and weights is not None:
        if not available:
            raise ConfigError(f"backbone {name!r} has no pretrained weights; drop --weights")
        pretrained = available[0]
    if pretrained is not None and pretrained not in available:
        offered = ", ".join(available) if available else "none (it trains from scratch)"
        raise ConfigError(
            f"backbone {name!r} has no pretrained weights {pretrained!r}; available: {offered}; "
            "or pass --pretrained none"
        )
    return pretrained


def build_backbone(
    name: str,
    *,
    embedding_dim: int | None = None,
    pretrained: str | None = None,
    weights: str | Path | None = None,
    registry: Registry,
) -> nn.Module:
    """The backbone registered as ``name`` (or an alias such as ``rres18``).

    ``embedding_dim`` defaults to the record's (512, 128 for lenet, the class count for
    classifiers); ``pretrained`` is ``"imagenet"`` or None; ``weights`` a local state_dict
    file. Unknown names raise UnknownNameError listing the registered backbones.
    """
    record = registry.get("backbones", name)
    if embedding_dim is None:
        embedding_dim = record.default_embedding_dim
    if int(embedding_dim) < 1:
        raise ConfigError(f"embedding dimension must be a positive integer; got {embedding_dim}")
    pretrained = check_pretrained(record.name, record.pretrained, pretrained, weights)
    return registry.create(
        "backbones", record.name, embedding_dim=int(embedding_dim), pretrained=pretrained, weights=weights
    )


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalize",
    "apply_state",
    "batchnorm_frozen",
    "build_backbone",
    "check_pretrained",
    "freeze_batchnorm",
    "hub_checkpoint_path",
    "load_imagenet_state",
    "unfreeze_batchnorm",
]
