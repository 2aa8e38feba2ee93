"""Reproducible, batch-size-independent random selection of attack targets.

The reference drew targets with ``np.random`` / ``torch.randint`` per batch, so the targets a
query got depended on the batch it fell in, the order of batches and the global RNG state.
Here every random number is a pure function of ``(seed, stream, global sample index, slot)``:
a vectorised 32-bit integer hash (``lowbias32`` by C. Wellons) evaluated with int64 tensor
arithmetic. Consequences: a query gets the same targets at any batch size, on any device, in
any shard, and a selection costs a handful of tensor ops instead of a Python loop per sample.
"""
from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9

#: independent random streams, one per selection purpose
STREAM_QUERIES = 1  # CA: which queries a candidate is attacked for
STREAM_CANDIDATES = 2  # QA/SPQA: which candidates a query is attacked with
STREAM_PERMUTATION = 3  # QA-/SPQA-: permutation of the top-1% list
STREAM_TARGET = 4  # TMA: the random target embedding
STREAM_START = 5  # PGD random start
STREAM_NES = 6  # NES search directions
STREAM_RESTART = 64  # APGD restart r >= 1 draws its start from stream STREAM_RESTART + r


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x < 2**32, without ever overflowing int64."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK32


def _mix(x: torch.Tensor) -> torch.Tensor:
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _mix_int(value: int) -> int:
    return int(_mix(torch.tensor(value & _MASK32, dtype=torch.int64)))


def stream_key(seed: int, stream: int) -> int:
    """A 32-bit key for one (seed, stream) pair; 64-bit seeds are folded in."""
    key = _mix_int(seed & _MASK32)
    key = _mix_int(key ^ ((seed >> 32) & _MASK32))
    return _mix_int(key ^ _mix_int(stream * _GOLDEN))


def hash_bits(seed: int, stream: int, index: torch.Tensor, count: int, offset: int = 0) -> torch.Tensor:
    """``[B, count]`` int64 values in [0, 2**32): slots ``offset .. offset + count - 1`` of sample ``index[b]``."""
    index = index.to(torch.int64).view(-1, 1)
    key = stream_key(seed, stream)
    per_sample = _mix(_mix(index ^ key) + (index >> 32))
    slots = torch.arange(offset, offset + count, dtype=torch.int64, device=index.device).view(1, -1)
    return _mix(per_sample ^ _mix(slots * _GOLDEN + key))


def uniform(seed: int, stream: int, index: torch.Tensor, count: int, offset: int = 0) -> torch.Tensor:
    """``[B, count]`` float64 uniforms in [0, 1)."""
    return hash_bits(seed, stream, index, count, offset).to(torch.float64) / 4294967296.0


def normal(seed: int, stream: int, index: torch.Tensor, count: int, offset: int = 0) -> torch.Tensor:
    """``[B, count]`` float64 standard normals (inverse CDF of the centred uniforms, never infinite)."""
    centred = (hash_bits(seed, stream, index, count, offset).to(torch.float64) + 0.5) / 4294967296.0
    return torch.special.ndtri(centred)


def randint(
    seed: int, stream: int, index: torch.Tensor, count: int, high: int, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """``[B, count]`` int64 uniform in [0, high), with replacement.

    ``exclude`` (``[B]``) removes one value per row (the perturbed object's own gallery
    slot), keeping the draw uniform over the other ``high - 1`` values.
    """
    if exclude is None:
        return (uniform(seed, stream, index, count) * high).floor().to(torch.int64).clamp_(max=high - 1)
    draw = (uniform(seed, stream, index, count) * (high - 1)).floor().to(torch.int64).clamp_(max=max(high - 2, 0))
    ex = exclude.to(draw.device).view(-1, 1)
    return draw + (draw >= ex).to(torch.int64)


def permutation(seed: int, stream: int, index: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, n]``: an independent uniformly random permutation of ``range(n)`` per sample."""
    keys = hash_bits(seed, stream, index, n)
    return keys.argsort(dim=1, stable=True)


def top_fraction(gallery_size: int, fraction: float = 0.01, minimum: int = 1) -> int:
    """How many nearest items form the "top 1%" list (reference: ``int(0.01 * N)``).

    The reference crashes when that is smaller than what the attack needs (galleries under
    100 items); here it is raised to ``minimum`` and capped at the gallery size minus one.
    """
    return max(1, min(max(int(gallery_size * fraction), minimum), gallery_size - 1))


def nearest_excluding_self(dist: torch.Tensor, k: int, self_slot: torch.Tensor, reference: bool) -> torch.Tensor:
    """Indices ``[B, k]`` of the k nearest gallery items other than the perturbed object.

    ``reference=True`` reproduces the reference exactly: the k+1 nearest with the first
    dropped (assumes the object is its own nearest neighbour). Otherwise the known self slot
    is masked before taking the k nearest.
    """
    if reference:
        return dist.topk(k + 1, dim=1, largest=False).indices[:, 1:]
    masked = dist.scatter(1, self_slot.view(-1, 1), float("inf"))
    return masked.topk(k, dim=1, largest=False).indices
