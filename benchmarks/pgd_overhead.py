"""Overhead of one PGD step inside an attack vs a bare forward + input-gradient.

Target (docs/performance.md): ratio <= 1.10 on a 2-core CPU. Both timings come from the same
process, same model (C2F2), same batch (128 MNIST-sized images) and a gallery of 10,000
embeddings, so machine load affects them alike. Prints one line per attack and the ratio.

    python benchmarks/pgd_overhead.py [--batch 128] [--gallery 10000] [--steps 20] [--attacks CA:pm=+:W=1,ES]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from robrank.plugins import get_registry


def build_model(embedding_dim: int):
    from robrank.models import EmbeddingModel

    try:
        from robrank.models.backbone import build_backbone

        backbone = build_backbone("c2f2", embedding_dim=embedding_dim, registry=get_registry())
    except Exception:  # the backbone plugin is not installed: an equivalent C2F2
        from torch import nn

        backbone = nn.Sequential(
            nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, embedding_dim),
        )
    return EmbeddingModel(backbone, "C").eval()


def time_it(fn, steps: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--gallery", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--embedding-dim", type=int, default=512)
    parser.add_argument("--attacks", default="CA:pm=+:W=1,ES,QA:pm=+:M=1")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from robrank.attacks import Gallery, attack_mode, build_attack, parse_spec
    from robrank.models.modes import embed

    torch.manual_seed(0)
    model = build_model(args.embedding_dim)
    gallery_emb = torch.nn.functional.normalize(torch.randn(args.gallery, args.embedding_dim), dim=1)
    gallery = Gallery(gallery_emb, torch.randint(0, 10, (args.gallery,)), "C")
    images = torch.rand(args.batch, 1, 28, 28)
    labels = torch.randint(0, 10, (args.batch,))
    index = torch.arange(args.batch)

    with attack_mode(model):
        def bare() -> None:
            x = images.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(embed(model, x).sum(), x)
            _ = images - grad.sign()

        print(f"C2F2, batch {args.batch}, gallery {args.gallery}, {torch.get_num_threads()} threads, torch {torch.__version__}")
        for text in args.attacks.split(","):
            attack = build_attack(parse_spec(f"{text}:pgditer=1", registry=get_registry()), registry=get_registry())
            ctx = attack.context(model, gallery, images, labels, index, self_slot=index)

            def one_step() -> None:
                attack.perturb(model, images, ctx)

            # interleave the two measurements so load changes hit both alike
            base, step = [], []
            for _ in range(3):
                base.append(time_it(bare, args.steps))
                step.append(time_it(one_step, args.steps))
            b, s = min(base), min(step)
            print(f"{attack.label:6s} bare fwd+grad {1000 * b:8.2f} ms   PGD step {1000 * s:8.2f} ms   ratio {s / b:.3f}")


if __name__ == "__main__":
    main()
