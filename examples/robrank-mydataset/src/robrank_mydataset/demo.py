"""A small synthetic image tree in the layout ``imagefolder`` reads, to try the plugin without data.

Class ``k`` of ``n`` is a filled ellipse in its own colour at its own place on a noisy
background; each image jitters position, size and noise, so classes are learnable but not
identical images. Deterministic for a given seed.
"""
from __future__ import annotations

import random
from pathlib import Path


def write_demo_tree(
    root: str | Path,
    *,
    classes: int = 6,
    per_class: int = 8,
    size: int = 64,
    layout: str = "single",
    fmt: str = "png",
    seed: int = 0,
) -> Path:
    """Write ``classes`` x ``per_class`` images under ``root``; returns ``root``.

    ``layout="single"`` writes ``root/<class>/<i>.<fmt>``; ``layout="split"`` writes every
    class into both ``root/train/<class>/`` and ``root/test/<class>/`` (half of its images
    each).
    """
    from PIL import Image, ImageDraw

    if layout not in ("single", "split"):
        raise ValueError(f"layout must be 'single' or 'split', got {layout!r}")
    root = Path(root)
    rng = random.Random(seed)
    for k in range(classes):
        name = f"class_{k:02d}"
        hue = (int(255 * (k % 3 == 0)), int(255 * (k % 3 == 1)), int(255 * (k % 3 == 2)))
        cx = size * (0.25 + 0.5 * ((k * 7) % classes) / max(1, classes - 1))
        cy = size * (0.25 + 0.5 * (k % 2))
        for i in range(per_class):
            if layout == "single":
                folder = root / name
            else:
                folder = root / ("train" if i < per_class // 2 else "test") / name
            folder.mkdir(parents=True, exist_ok=True)
            image = Image.new("RGB", (size, size))
            pixels = image.load()
            for y in range(size):
                for x in range(size):
                    v = rng.randrange(0, 60)
                    pixels[x, y] = (v, v, v)
            r = size * rng.uniform(0.15, 0.22)
            dx, dy = rng.uniform(-3, 3), rng.uniform(-3, 3)
            ImageDraw.Draw(image).ellipse((cx + dx - r, cy + dy - r, cx + dx + r, cy + dy + r), fill=hue)
            image.save(folder / f"{i:03d}.{fmt}")
    return root
