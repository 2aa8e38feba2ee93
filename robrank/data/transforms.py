"""The reference code's image transforms, and a vectorised crop-and-flip for in-memory splits.

Pixels stay in [0, 1] with no mean/std normalisation anywhere here: backbones normalise
inside their forward, so attacks and defenses perturb real pixels (the reference).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .base import TensorImageDataset

RESIZE_224 = 256
CROP_224 = 224


def reference_transform(train: bool, size: int = CROP_224, resize: int = RESIZE_224) -> Callable[[object], torch.Tensor]:
    """CUB/Cars/SOP transforms of the reference code (the reference).

    train: Resize((256, 256)) -> RandomCrop(224) -> RandomHorizontalFlip(0.5) -> ToTensor;
    test:  Resize((256, 256)) -> CenterCrop(224) -> ToTensor.
    """
    from torchvision import transforms as T  # lazy: torchvision takes seconds to import

    crop = T.RandomCrop(size) if train else T.CenterCrop(size)
    steps: list[Callable] = [T.Resize((resize, resize)), crop]
    if train:
        steps.append(T.RandomHorizontalFlip(0.5))
    steps.append(T.ToTensor())
    return T.Compose(steps)


def random_crop_flip(
    images: torch.Tensor, padding: int, generator: torch.Generator | None = None, flip: bool = True
) -> torch.Tensor:
    """RandomCrop(size, padding) + RandomHorizontalFlip on a whole N x C x H x W batch at once.

    Each image gets its own offset and flip, as torchvision's per-image transforms would,
    but with two indexing ops instead of a Python loop per image. Zero padding, as
    ``RandomCrop(padding=p)``'s default ``fill=0``.
    """
    n, _, h, w = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(device)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, :, None]  # n x h x 1
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, :]  # n x 1 x w
    batch = torch.arange(n, device=device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # n x C x h x w
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(device)
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out.contiguous()


class CropFlipTensorDataset(TensorImageDataset):
    """An in-memory uint8 split with the CIFAR training augmentation (RandomCrop(32, padding=4) + flip).

    Both the per-item path (DataLoader) and the vectorised ``images(indices)`` path (the
    training engine's in-memory batches) draw fresh crops and flips each call.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(images, labels)
        self.padding = padding
        self.generator = generator

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = random_crop_flip(self.data[index : index + 1], self.padding, self.generator)[0]
        return image.float().div_(255.0), int(self.labels[index])

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        batch = self.data[indices.to(self.data.device)]
        return random_crop_flip(batch, self.padding, self.generator).float().div_(255.0)
