"""``robrank show RUN -A SPEC``: the before/after retrieval picture of one attack on a few queries.

The picture papers and slides show: for each chosen test image, the image, the perturbation
(amplified, with its L∞ norm), the adversarial image, and the top-k results before and after
the attack, framed green (the query's class) or red (another class). Candidate attacks show
the query whose ranking the candidate was moved in, and the candidate's rank before/after.
"""
from __future__ import annotations

import click

from .external_model import external_model_options
from .options import data_root_option, figure_output_option, runtime_options, semantics_option, with_default
from ..errors import ConfigError
from ..plot.figure import figure_format, save
from ..plugins import get_registry
from ..runtime import RuntimeOptions, resolve_device


def _parse_queries(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--queries takes test-image indices separated by commas, e.g. 0,17,42 (got {text!r})") from None
    if not values:
        raise ConfigError("--queries is empty; give test-image indices such as 0,17,42")
    return values


@click.command("show")
@click.argument("run_or_ckpt", metavar="[RUN_OR_CKPT]", type=click.Path(path_type=str), required=False)
@external_model_options
@click.option("-A", "--attack", "spec", required=True, help="Attack spec TYPE:key=val:..., e.g. QA:pm=+:M=1:eps=0.30196:alpha=0.011764:pgditer=32.")
@click.option("--queries", default=None, metavar="I,J,...", help="Test-image indices to attack, e.g. 0,17,42.")
@click.option("--random", "random_count", type=click.IntRange(min=1), default=None, metavar="N", help="Attack N test images drawn with --seed instead.")
@click.option("--seed", type=int, default=0, help=with_default("Seed of --random and of the attack's target selection (as in robrank swipe).", 0))
@click.option("-k", "--top", type=click.IntRange(min=1), default=5, help=with_default("Results shown per ranking.", 5))
@figure_output_option("show.png")
@semantics_option
@runtime_options()
@data_root_option
def show_command(
    run_or_ckpt: object,
    spec: str,
    queries: str | None,
    random_count: int | None,
    seed: int,
    top: int,
    output: str,
    semantics: str | None,
    runtime: RuntimeOptions,
    data_root: str | None,
) -> None:
    """Draw what attack SPEC does to the rankings of a few test images of RUN_OR_CKPT (or --model).

    \b
    Examples:
      robrank show runs/A -A QA:pm=+:M=1:eps=0.30196:alpha=0.011764:pgditer=32 --queries 0,17,42
      robrank show runs/A -A CA:pm=+:W=1:eps=0.30196:alpha=0.011764:pgditer=32 --random 3 --output 'ca-{query}.pdf'
      robrank show --model my_net.py:build --weights w.pt --metric N --dataset mnist -A ES:eps=0.3 --queries 0

    An --output name containing {query} writes one file per query.
    """
    from ..attacks import parse_spec  # lazy: keeps robrank --help torch-free

    if (queries is None) == (random_count is None):
        raise ConfigError("choose the test images with either --queries I,J,... or --random N (with --seed S)")

    figure_format(output.replace("{query}", "0"))  # a bad suffix fails before any work
    registry = get_registry()
    parsed = parse_spec(spec, registry)
    chosen = _parse_queries(queries) if queries is not None else None

    import torch  # lazy: keeps robrank --help torch-free

    from ..data.loading import load_split  # lazy: keeps robrank --help torch-free
    from ..models.external import load_any  # lazy: keeps robrank --help torch-free
    from ..plot.show import retrieval_examples, show_figure  # lazy: keeps robrank --help fast

    device = resolve_device(runtime.device)
    semantics = semantics or "reference"
    run = load_any(run_or_ckpt, device=str(device), registry=registry)  # a robrank run, or a --model spec (docs/api.md)
    dataset = load_split(run.dataset, "test", data_root, registry=registry)
    if chosen is None:
        if random_count > len(dataset):
            raise ConfigError(f"--random {random_count} asks for more images than the test split holds ({len(dataset)})")
        generator = torch.Generator().manual_seed(seed)
        chosen = sorted(torch.randperm(len(dataset), generator=generator)[:random_count].tolist())
    examples = retrieval_examples(run.model, dataset, parsed, chosen, top=top, seed=seed, semantics=semantics, device=str(device),
                                  dataset_name=run.dataset, registry=registry)
    class_names = getattr(dataset, "classes", None)
    if "{query}" in output:
        for example in examples:
            path = save(show_figure([example], parsed.text, class_names=class_names), output.replace("{query}", str(example.index)))
            click.echo(f"wrote {path}")
    else:
        click.echo(f"wrote {save(show_figure(examples, parsed.text, class_names=class_names), output)}")
    for example in examples:
        line = f"{example.role} #{example.index}: L-inf {example.linf:.4f}"
        if example.rank_before is not None:
            line += f", rank in query #{example.query}'s list {example.rank_before} -> {example.rank_after}"
        else:
            right = lambda hits: sum(h.label == example.label for h in hits)  # noqa: E731
            line += f", same-class results in the top {top}: {right(example.before)} -> {right(example.after)}"
        click.echo(line)
