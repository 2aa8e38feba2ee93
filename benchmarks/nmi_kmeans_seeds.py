"""How much NMI depends on the k-means initialisation alone, for one trained model.

NMI (the reference) clusters the test embeddings with k-means (faiss, seed 123, k = the
number of test classes) and compares the clusters with the labels. A single k-means run can
stop in a local optimum that merges two classes and splits another, which costs about 10
NMI points on a 10-class set even when R@1 is 99 %. This script embeds the test split once
and reruns the same faiss k-means with several seeds, printing NMI and the k-means objective
per seed, so that a gap to a published NMI can be told apart from a real difference in the
embedding.

    ROBRANK_DATA=path/to/data python benchmarks/nmi_kmeans_seeds.py runs/repro/mnist-none --seeds 20
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from robrank.plugins import get_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory or checkpoint")
    parser.add_argument("--seeds", type=int, default=20, help="k-means seeds 0..N-1 (plus the reference's 123)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import faiss
    from sklearn.metrics import normalized_mutual_info_score

    from robrank.data.loading import dataset_record, load_split
    from robrank.models.checkpoint import load_run
    from robrank.training.engine import embed_split
    from robrank.training.config import TrainConfig

    loaded = load_run(args.run, device="cpu", registry=get_registry())
    dataset = load_split(loaded.dataset, "test", data_root=args.data_root, registry=get_registry())
    config = TrainConfig.from_dict({k: v for k, v in loaded.config.items() if k in TrainConfig.__dataclass_fields__})
    embeddings, labels = embed_split(loaded.model, dataset, config, torch.device("cpu"))
    x = np.ascontiguousarray(embeddings.float().numpy(), dtype=np.float32)
    y = labels.numpy()
    k = dataset_record(loaded.dataset, registry=get_registry()).num_test_classes or int(len(np.unique(y)))
    rows = []
    for seed in [123, *range(args.seeds)]:
        km = faiss.Kmeans(x.shape[1], k, seed=seed, verbose=False)
        km.train(x)
        _, assign = km.index.search(x, 1)
        nmi = normalized_mutual_info_score(y, assign.ravel())
        rows.append((seed, 100 * nmi, float(km.obj[-1])))
        print(f"seed {seed:4d}  NMI {100 * nmi:6.2f}  k-means objective {km.obj[-1]:10.2f}", flush=True)
    values = [r[1] for r in rows]
    best = min(rows, key=lambda r: r[2])
    print(f"{loaded.dataset}: {len(x)} embeddings, k={k}; NMI over {len(rows)} seeds: min {min(values):.2f}, "
          f"median {statistics.median(values):.2f}, max {max(values):.2f}, mean {statistics.mean(values):.2f} "
          f"± {statistics.pstdev(values):.2f}; lowest-objective seed {best[0]}: NMI {best[1]:.2f}")


if __name__ == "__main__":
    main()
