"""Keeping the perturbed images of an attack (``robrank attack --save-adversarial DIR``).

An attack's numbers say *that* a ranking broke; the images say *how*. The collector keeps
each batch's adversarial images (float32 on the CPU: PGD's pixels are not multiples of
1/255, so rounding them to uint8 would change the attack) with their dataset indices, and
:meth:`AdversarialCollector.save` writes

* ``adversarial.pt`` — ``{"format": "robrank-adversarial", "spec", "dataset", "model",
  "indices" [N], "labels" [N], "adversarial" [N, C, H, W]}``, readable with
  ``torch.load(..., weights_only=True)``;
* ``examples.png`` — the first images: clean (top row), adversarial, and the perturbation
  scaled to the full grey range (bottom row);
* ``adversarial-<index>.png`` for those same first images.

A whole 224x224 split is large (SOP's test split would be tens of GB): limit it with
``--max-batches``.

Saved images are results: a folder that already holds any of these files is refused (before
the attack runs, and again when writing) rather than overwritten, and a folder the OS will not
let robrank create or write is a one-line :class:`~robrank.errors.StorageError`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from ..errors import CheckpointError
from ..errors import ConfigError, StorageError, os_error_message
from ..io import atomic_open, save_checkpoint
from ..io import load_checkpoint

#: how many examples get PNGs
PNG_EXAMPLES = 8
FORMAT = "robrank-adversarial"


def saved_files(folder: str | Path) -> list[str]:
    """The files of an earlier ``--save-adversarial`` in ``folder`` (none when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = ["adversarial.pt", "examples.png"]
    return [n for n in names if (folder / n).exists()] + sorted(p.name for p in folder.glob("adversarial-*.png"))


def prepare_folder(folder: str | Path, *, keep: bool = True) -> Path:
    """``folder`` created and empty of earlier results, or a one-line error.

    Run before the attack too (``keep=False``), so that a folder that holds results or
    cannot be created fails before any work; that probe removes the folders it created, so
    a command refused later leaves nothing behind.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--save-adversarial {folder} is a file; give a folder")
    taken = saved_files(folder)
    if taken:
        raise ConfigError(f"--save-adversarial {folder} already holds {taken[0]} of an earlier attack; saved results are never "
                          "replaced: choose a new folder or remove the old files")
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(os_error_message(exc, "create the --save-adversarial folder")) from None
    if not keep:
        for path in created:  # deepest first
            try:
                path.rmdir()
            except OSError:
                break
    return folder


class AdversarialCollector:
    """An ``on_batch`` callback for :func:`robrank.attacks.run_attack` that keeps the adversarial images."""

    def __init__(self) -> None:
        self.indices: list[torch.Tensor] = []
        self.images: list[torch.Tensor] = []

    def __call__(self, index: torch.Tensor, outcome: Any) -> None:
        self.indices.append(index.detach().to("cpu", torch.int64))
        self.images.append(outcome.adversarial.detach().to("cpu", torch.float32))

    def save(self, folder: str | Path, dataset: Any, *, spec: str, dataset_name: str, model: str) -> Path:
        """Write the tensor file and the PNGs into ``folder`` (created); returns the tensor file."""
        from torchvision.utils import save_image  # lazy: torchvision takes seconds to import

        folder = prepare_folder(folder)  # again: another process may have written there meanwhile
        indices = torch.cat(self.indices) if self.indices else torch.empty(0, dtype=torch.int64)
        adversarial = torch.cat(self.images) if self.images else torch.empty(0)
        labels = dataset.labels.to("cpu")[indices] if indices.numel() else torch.empty(0, dtype=torch.int64)
        path = folder / "adversarial.pt"
        save_checkpoint(path, {"format": FORMAT, "spec": spec, "dataset": dataset_name, "model": model,
                               "indices": indices, "labels": labels, "adversarial": adversarial})
        shown = indices[:PNG_EXAMPLES]
        if shown.numel():
            clean = dataset.images(shown).to("cpu", torch.float32)
            adv = adversarial[: shown.numel()]
            delta = adv - clean
            scale = delta.abs().amax().clamp_min(1e-12)
            grid = torch.cat([clean, adv, delta / (2 * scale) + 0.5])
            with atomic_open(folder / "examples.png", "wb") as handle:
                save_image(grid, handle, nrow=int(shown.numel()), padding=2, format="png")
            for i, index in enumerate(shown.tolist()):
                with atomic_open(folder / f"adversarial-{index}.png", "wb") as handle:
                    save_image(adv[i], handle, format="png")
        return path


def load_adversarial(path: str | Path) -> dict[str, Any]:
    """Read an ``adversarial.pt`` (tensors and plain data only)."""
    payload = load_checkpoint(Path(path) / "adversarial.pt" if Path(path).is_dir() else path)
    if payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a file written by robrank attack --save-adversarial")
    return payload


__all__ = ["AdversarialCollector", "load_adversarial", "prepare_folder", "saved_files", "FORMAT", "PNG_EXAMPLES"]
