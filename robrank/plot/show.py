"""Before/after retrieval pictures: what one attack did to the rankings of a few test images.

For each chosen test image the attack runs exactly as in a swipe (same selection seed, same
own-slot convention, so the picture shows a sample of the swipe's numbers), and the figure
shows the clean image, the perturbation (amplified to the full grey range, with its L∞
norm), the adversarial image, and the top-k retrieved before and after the attack, each
result framed green when its class is the query's and red when it is not.

Query attacks perturb the query: the rankings shown are the query's own. Candidate attacks
(``Attack.perturbs == "candidate"``) perturb a gallery item so that it rises or sinks in the
rankings of chosen queries (``ctx.sel.queries``): the rankings shown are the first chosen
query's, before and after the candidate was replaced by its adversarial version, with the
candidate's rank in both. The adversarial candidate is framed blue only when it reached the
shown top-k; when it did not, its title gives the rank it reached instead.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..plugins import Registry
from .figure import PAGE_WIDTH, blank_figure, paper_style

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

#: frame colours: same class as the query, another class, the attacked candidate
RIGHT, WRONG, CANDIDATE = "#1a9850", "#d73027", "#4575b4"
DEFAULT_TOP = 5


@dataclass
class Hit:
    """One retrieved gallery item: its slot in the test split, its label, and whether it is the candidate."""

    slot: int
    label: int
    distance: float
    candidate: bool = False


@dataclass
class Example:
    """Everything one panel shows (tensors on the CPU; images C x H x W in [0, 1])."""

    index: int
    label: int
    role: str
    clean: Any
    adversarial: Any
    linf: float
    before: list[Hit] = field(default_factory=list)
    after: list[Hit] = field(default_factory=list)
    query: int | None = None
    query_label: int | None = None
    query_image: Any = None
    rank_before: int | None = None
    rank_after: int | None = None
    #: slot -> image of every retrieved item shown
    pictures: dict[int, Any] = field(default_factory=dict)


def _ranking(dist: torch.Tensor, labels: torch.Tensor, exclude: Sequence[int], k: int, candidate: int | None) -> list[Hit]:
    import torch  # lazy: keeps this module torch-free

    row = dist.clone().to(torch.float64)
    for slot in exclude:
        row[slot] = math.inf
    order = torch.argsort(row, stable=True)[:k]
    return [Hit(int(s), int(labels[s]), float(row[s]), candidate is not None and int(s) == candidate) for s in order]


def _rank_of(dist: torch.Tensor, slot: int, exclude: Sequence[int]) -> int:
    """1-based position of ``slot`` in the ranking by ``dist`` (ties broken by slot, as argsort(stable))."""
    import torch  # lazy: keeps this module torch-free

    keep = torch.ones_like(dist, dtype=torch.bool)
    for s in exclude:
        keep[s] = False
    value = dist[slot]
    ahead = (dist < value) & keep
    tied = (dist == value) & keep & (torch.arange(dist.numel(), device=dist.device) < slot)
    return int(ahead.sum() + tied.sum()) + 1


def retrieval_examples(
    model: Any,
    dataset: Any,
    spec: Any,
    queries: Sequence[int],
    *,
    top: int = DEFAULT_TOP,
    seed: int = 0,
    semantics: str = "reference",
    device: str = "cpu",
    dataset_name: str | None = None,
    gallery: Any = None,
    registry: Registry,
) -> list[Example]:
    """Attack the test images ``queries`` with ``spec`` and collect their rankings before and after."""
    import torch  # lazy: keeps this module torch-free

    from ..attacks.gallery import Gallery  # lazy: keeps this module torch-free
    from ..attacks.runner import AttackOptions, build_attack  # lazy: keeps this module torch-free
    from ..attacks.spec import parse_spec  # lazy: keeps this module torch-free
    from ..distances import pairwise  # lazy: keeps this module torch-free
    from ..models.modes import attack_mode, embed  # lazy: keeps this module torch-free

    spec = parse_spec(spec, registry)
    n = len(dataset)
    bad = [q for q in queries if not 0 <= int(q) < n]
    if bad:
        raise ConfigError(f"query index {bad[0]} is outside the test split (0..{n - 1}); pick --queries within it")
    if top < 1 or top >= n:
        raise ConfigError(f"--top must be between 1 and {n - 1} (got {top})")
    device = torch.device(device)
    model = model.to(device)
    if dataset_name is None:
        dataset_name = getattr(model, "dataset", None) or getattr(dataset, "name", None)
    # the data's spec defaults (a dataset's own attack settings) apply as in a swipe
    attack = build_attack(spec, AttackOptions.for_dataset(dataset_name, registry, semantics=semantics, seed=seed, device=str(device)),
                          registry=registry)
    if gallery is None:
        gallery = Gallery.compute(model, dataset, device=device)
    gallery = gallery.to(device)
    index = torch.as_tensor([int(q) for q in queries], dtype=torch.int64, device=device)
    images = dataset.images(index.cpu()).to(device)
    labels = gallery.labels[index]
    with attack_mode(model):
        ctx = attack.context(model, gallery, images, labels, index, seed=seed, self_slot=index)
        adversarial = attack.perturb(model, images, ctx).detach()
        with torch.no_grad():
            adv_emb = embed(model, adversarial)
    all_labels = gallery.labels.cpu()
    examples = []
    with torch.no_grad():
        for b, q in enumerate(index.tolist()):
            delta = (adversarial[b] - images[b]).abs().max()
            example = Example(
                index=q, label=int(all_labels[q]), role=getattr(attack, "perturbs", "query"),
                clean=images[b].cpu(), adversarial=adversarial[b].cpu(), linf=float(delta),
            )
            if example.role == "candidate":
                target = int(ctx.sel.queries[b].view(-1)[0])
                before = pairwise(gallery.embeddings[target : target + 1], gallery.embeddings, gallery.metric)[0]
                after = before.clone()
                after[q] = pairwise(gallery.embeddings[target : target + 1], adv_emb[b : b + 1], gallery.metric)[0, 0]
                exclude = [target]
                example.query, example.query_label = target, int(all_labels[target])
                example.query_image = dataset.images(torch.tensor([target]))[0].cpu()
                example.rank_before, example.rank_after = _rank_of(before, q, exclude), _rank_of(after, q, exclude)
                example.before = _ranking(before.cpu(), all_labels, exclude, top, q)
                example.after = _ranking(after.cpu(), all_labels, exclude, top, q)
            else:
                before = ctx.clean_dist[b]
                after = pairwise(adv_emb[b : b + 1], gallery.embeddings, gallery.metric)[0]
                example.before = _ranking(before.cpu(), all_labels, [q], top, None)
                example.after = _ranking(after.cpu(), all_labels, [q], top, None)
            slots = sorted({h.slot for h in example.before + example.after})
            example.pictures = dict(zip(slots, dataset.images(torch.tensor(slots)).cpu()))
            examples.append(example)
    return examples


def _imshow(ax: Any, image: Any, title: str, frame: str | None = None, title_color: str = "black") -> None:
    array = image.detach().float().clamp(0, 1).permute(1, 2, 0).numpy()
    if array.shape[2] == 1:
        ax.imshow(array[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(array, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.set_title(title, fontsize=6, color=title_color, pad=2)
    for side in ("left", "right", "top", "bottom"):
        spine = ax.spines[side]
        spine.set_visible(frame is not None)
        if frame is not None:
            spine.set_color(frame)
            spine.set_linewidth(2.0)


def _amplified(example: Example) -> tuple[Any, float]:
    delta = example.adversarial - example.clean
    if example.linf <= 0:
        return delta + 0.5, 1.0
    gain = 0.5 / example.linf
    return (0.5 + gain * delta).clamp(0, 1), gain


def _hit_frame(hit: Hit, label: int) -> str:
    if hit.candidate:
        return CANDIDATE
    return RIGHT if hit.label == label else WRONG


def _draw(subfig: Any, example: Example, spec_text: str, class_names: Sequence[str] | None) -> None:
    top = len(example.before)
    is_candidate = example.role == "candidate"
    # clean | perturbation | adversarial | gap | [query of the ranking | gap] | top-k
    ratios = [1, 1, 1, 0.3] + ([1, 0.15] if is_candidate else []) + [1] * top
    first_hit = len(ratios) - top
    grid = subfig.add_gridspec(2, len(ratios), width_ratios=ratios, wspace=0.05, hspace=0.05)
    name = (lambda y: class_names[y] if class_names and 0 <= y < len(class_names) else str(y))
    what = "candidate" if is_candidate else "query"
    _imshow(subfig.add_subplot(grid[:, 0]), example.clean, f"{what} #{example.index}\nclass {name(example.label)}")
    perturbation, gain = _amplified(example)
    _imshow(subfig.add_subplot(grid[:, 1]), perturbation, f"perturbation ×{gain:.1f}\nL∞ {255 * example.linf:.1f}/255")
    reached = is_candidate and example.rank_after is not None and example.rank_after <= top
    if is_candidate:  # framed blue only when it did reach the top-k; otherwise the title says where it ended
        title = "adversarial\ncandidate" if reached else f"adversarial\ncand. → rank {example.rank_after}\n(not in top-{top})"
    else:
        title = f"adversarial\n{what}"
    adversarial = subfig.add_subplot(grid[:, 2])
    _imshow(adversarial, example.adversarial, title, frame=CANDIDATE if reached else None)
    adversarial.set_gid(f"adversarial-{example.index}")
    reference_label = example.query_label if is_candidate else example.label
    rows = (("before", example.before, example.rank_before), ("after", example.after, example.rank_after))
    for r, (when, hits, rank) in enumerate(rows):
        if is_candidate:
            ax = subfig.add_subplot(grid[r, 4])
            _imshow(ax, example.query_image, f"query #{example.query}" if r == 0 else "")
            ax.set_ylabel(f"{when}\ncand. rank {rank}", fontsize=6)
        for j, hit in enumerate(hits):
            ax = subfig.add_subplot(grid[r, first_hit + j])
            color = _hit_frame(hit, reference_label)
            title = ("cand." if hit.candidate else f"#{j + 1}") + f": {name(hit.label)}"
            image = example.adversarial if (hit.candidate and when == "after") else example.pictures[hit.slot]
            _imshow(ax, image, title, frame=color, title_color=color)
            ax.set_gid(f"show-{example.index}-{when}-{j}")
            if j == 0 and not is_candidate:
                ax.set_ylabel(f"{when}", fontsize=7)
    subfig.suptitle(f"{spec_text}: {what} #{example.index}", fontsize=7)


def show_figure(examples: Sequence[Example], spec_text: str, *, class_names: Sequence[str] | None = None,
                width: float = PAGE_WIDTH) -> Figure:
    """One block per example, stacked: clean, perturbation, adversarial, then top-k before and after."""
    if not examples:
        raise ConfigError("no queries to show; pass --queries or --random")
    top = len(examples[0].before)
    columns = 3.3 + top + (1.15 if examples[0].role == "candidate" else 0)
    cell = width / (columns + 0.3)
    height = (2 * cell + 0.6) * len(examples)
    with paper_style():
        fig = blank_figure(width, height)
        subfigs = fig.subfigures(len(examples), 1, squeeze=False)[:, 0]
        for subfig, example in zip(subfigs, examples):
            _draw(subfig, example, spec_text, class_names)
    return fig


__all__ = ["Hit", "Example", "retrieval_examples", "show_figure", "RIGHT", "WRONG", "CANDIDATE", "DEFAULT_TOP"]
