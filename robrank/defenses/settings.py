"""Adversarial-training budgets of the reference code (the reference), by image-size family.

The reference read them from its per-backbone config and let empty files in the working
directory (``override_pgditer_8`` ...) change η behind the user's back. Here they are plain
defaults that an explicit option (``--eps/--alpha/--pgditer``) overrides and that the run's
config.json records.
"""
from __future__ import annotations

from ..records import SIZE_224, SIZE_28, size_family

#: image-size family -> (eps, alpha, pgditer)
ADVTRAIN_DEFAULTS: dict[int, tuple[float, float, int]] = {
    SIZE_28: (77.0 / 255.0, 3.0 / 255.0, 32),
    SIZE_224: (8.0 / 255.0, 1.0 / 255.0, 32),
}


#: HM's hardness-alignment objectives (the reference's "hm{kl,l2,et}"; ET is the paper's;
#: :func:`robrank.defenses.hardness.alignment`), here without torch for HM's declaration
METHODS: tuple[str, ...] = ("et", "l2", "kl")


def pgd_defaults(image_size: int | None) -> tuple[float, float, int]:
    """(eps, alpha, pgditer) of the reference for this image size (28x28 when unknown)."""
    return ADVTRAIN_DEFAULTS[size_family(image_size)]
