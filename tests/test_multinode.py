"""Two torchrun "nodes" on localhost behave like one machine: ``robrank swipe`` and ``robrank train``.

Each node is its own ``torchrun --nnodes 2 --node-rank R --nproc-per-node 1 --rdzv-backend
c10d`` launch, meeting at a free loopback port (gloo on the CPU, every address 127.0.0.1),
so what is exercised is exactly what two machines of a cluster run. Every Python process
loads ``tests/fixtures/node_audit/sitecustomize.py``, which logs each file written under
the test's directory with the global rank that wrote it, and can kill a whole node (its
torchrun agent and its worker) right after a given save.

What must match (docs/scaling.md):

* a swipe: the results file of two nodes equals a one-process swipe with the same batch
  size, attack by attack (per-sample sums in float64; same bits in practice);
* training: two nodes x one process equal one node with ``--devices 2`` exactly (same ranks,
  same shards, same seeds, same gloo reduction); equality with *one* process of twice the
  batch holds only for losses that are means of per-pair terms (tests/test_ddp.py), since a
  miner picks its negatives within each rank's own batch.
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robrank.training.distributed import free_port
from robrank.plugins import get_registry

AUDIT = Path(__file__).parent / "fixtures" / "node_audit"
SWIPE = ["-p", "rob28", "-b", "4", "-m", "2", "--device", "cpu", "--no-progress"]  # 8 queries: one batch per rank
TRAIN = ["--dataset", "digits", "--backbone", "c2f2", "--loss", "ptripletN", "--embedding-dim", "16", "-b", "8",
         "--epochs", "1", "--max-steps", "6", "--device", "cpu", "--num-workers", "0", "--seed", "3", "--no-progress"]
TIMEOUT = 150  # seconds for one launch of both nodes; nothing here should need a third of it


def _loopback() -> str:
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    return names[0] if names else "lo"


class Nodes:
    """Two torchrun launches of ``robrank ARGS`` that rendezvous on 127.0.0.1; killed on exit."""

    def __init__(self, root: Path, name: str, kill_after: str = "") -> None:
        self.root, self.name, self.kill_after = root, name, kill_after
        self.log = root / f"{name}.audit"
        self.procs: list[subprocess.Popen] = []
        self.outputs: list[Path] = []

    def start(self, *args: str) -> Nodes:
        port = free_port()
        for node in (0, 1):
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(AUDIT), os.environ.get("PYTHONPATH", "")])),
                "ROBRANK_AUDIT_ROOT": str(self.root),
                "ROBRANK_AUDIT_LOG": str(self.log),
                "ROBRANK_AUDIT_NODE": str(node),
                "ROBRANK_KILL_AFTER": self.kill_after,
                "GLOO_SOCKET_IFNAME": _loopback(),
                "OMP_NUM_THREADS": "1",
            }
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
                   "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                   "--rdzv-conf", "join_timeout=60", "--local-addr", "127.0.0.1", "--max-restarts", "0",
                   "--monitor-interval", "0.5", "-m", "robrank", *args]
            out = self.root / f"{self.name}.node{node}.log"
            with open(out, "w") as handle:
                self.procs.append(subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                                   cwd=self.root, start_new_session=True))
            self.outputs.append(out)
        return self

    def wait(self) -> list[int]:
        deadline = time.monotonic() + TIMEOUT
        try:
            return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in self.procs]
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the nodes did not finish in {TIMEOUT} s:\n{self.tails()}")

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=30)

    def tails(self) -> str:
        return "\n".join(f"--- {o.name}\n{o.read_text()[-3000:]}" for o in self.outputs if o.exists())

    def writes(self) -> list[tuple[str, str, str, str]]:
        """(node, rank, event, path) of every file written under the test directory."""
        if not self.log.exists():
            return []
        return [tuple(line.split("\t")) for line in self.log.read_text().splitlines()]  # type: ignore[misc]


@pytest.fixture
def nodes(tmp_path):
    made: list[Nodes] = []

    def make(name: str, kill_after: str = "") -> Nodes:
        made.append(Nodes(tmp_path, name, kill_after))
        return made[-1]

    yield make
    for n in made:
        n.kill()


def _writers(nodes: Nodes) -> set[tuple[str, str]]:
    return {(node, rank) for node, rank, _, _ in nodes.writes()}


def _only_rank_0_wrote(nodes: Nodes) -> None:
    writers = _writers(nodes)
    assert writers, "nothing was written"
    assert {rank for _, rank in writers} == {"0"}, f"files written by other ranks: {sorted(writers)}"


# ---- swipe --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swiped(tmp_path_factory):
    """An untrained C2F2 run and its one-process rob28 swipe (the reference for the nodes)."""
    from robrank.swipe import swipe
    from robrank.testing import write_untrained_run

    root = tmp_path_factory.mktemp("single")
    run = write_untrained_run(root / "run")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = swipe(run, "rob28", output=root / "single.json", batch_size=4, max_batches=2, progress=False, registry=get_registry())
    finally:
        torch.set_num_threads(before)
    return run, json.loads(single.read_text())


def _same_swipe(two: dict, one: dict) -> None:
    assert two["finished"] is not None and two["options"]["world_size"] == 2 and one["options"]["world_size"] == 1
    assert two["planned"] == one["planned"] and two["model"] == one["model"] and two["queries"] == one["queries"]
    assert [a["spec"] for a in two["attacks"]] == one["planned"]
    for mine, theirs in zip(two["attacks"], one["attacks"]):
        assert mine["count"] == theirs["count"] == 8
        for side in ("orig", "adv"):
            assert mine[side].keys() == theirs[side].keys()
            for key, value in theirs[side].items():
                assert math.isclose(mine[side][key], value, rel_tol=1e-12, abs_tol=1e-12), (mine["spec"], side, key)
    assert math.isclose(two["ers"]["ers"], one["ers"]["ers"], rel_tol=1e-12)


@pytest.mark.timeout(300)
def test_swipe_on_two_nodes_equals_one_process(swiped, nodes, tmp_path):
    run, single = swiped
    out = tmp_path / "two.json"
    launch = nodes("swipe").start("swipe", str(run), *SWIPE, "--output", str(out))
    assert launch.wait() == [0, 0], launch.tails()
    _same_swipe(json.loads(out.read_text()), single)
    _only_rank_0_wrote(launch)
    assert {Path(path).name for _, _, event, path in launch.writes() if event == "os.rename"} == {"two.json"}
    # the report is printed once, by the node that holds global rank 0
    assert sum("ERS" in o.read_text() for o in launch.outputs) == 1


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_swipe_resumes_after_the_writing_node_is_killed(swiped, nodes, tmp_path):
    run, single = swiped
    out = tmp_path / "two.json"
    # the file is saved once before the first attack, then after each: die after the second attack
    first = nodes("killed", kill_after="two.json:3").start("swipe", str(run), *SWIPE, "--output", str(out))
    codes = first.wait()
    assert codes[0] != 0 and codes[1] != 0, first.tails()  # one node killed, the other failed without it
    partial = json.loads(out.read_text())
    assert [a["spec"] for a in partial["attacks"]] == single["planned"][:2] and partial["finished"] is None
    (killed,) = {node for node, rank, *_ in first.writes() if rank == "0"}

    second = nodes("restarted").start("swipe", str(run), *SWIPE, "--output", str(out))
    assert second.wait() == [0, 0], second.tails()
    final = json.loads(out.read_text())
    _same_swipe(final, single)
    assert final["attacks"][:2] == partial["attacks"]  # kept as saved (their timings too): not recomputed
    assert final["started"] == partial["started"]
    _only_rank_0_wrote(second)
    assert killed in {"0", "1"}


# ---- training -----------------------------------------------------------------------------


def _checkpoint(run_dir: Path) -> dict:
    from robrank.io import load_checkpoint

    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def _same_training(a: Path, b: Path, resumed: bool = False) -> None:
    """Bit-equal weights, optimiser moments, step and per-rank RNG; the same validation rows.

    After a resume the row's ``train_loss`` is the mean over the steps run since the resume
    (the engine keeps no running loss in its checkpoints), so it is left out then.
    """
    one, two = _checkpoint(a), _checkpoint(b)
    assert one["world_size"] == two["world_size"] == 2 and one["step"] == two["step"] == 6
    for key, value in one["model"].items():
        assert torch.equal(value, two["model"][key]), key
    for mine, theirs in zip(one["optimizers"], two["optimizers"]):  # Adam's moments, per parameter
        for index, state in mine["state"].items():
            for name, value in state.items():
                assert torch.equal(value, theirs["state"][index][name]), (index, name)
    for x, y in zip(one["rng"]["torch_ranks"], two["rng"]["torch_ranks"]):
        assert torch.equal(x, y)
    timing = ("train_seconds", "val_seconds", *(("train_loss",) if resumed else ()))
    rows = [[{k: v for k, v in json.loads(line).items() if k not in timing} for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) == 1


@pytest.fixture(scope="module")
def trained_on_one_node(tmp_path_factory):
    """The same training with ``--devices 2`` on one node: what the two nodes must reproduce."""
    root = tmp_path_factory.mktemp("one-node")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": _loopback()}
    done = subprocess.run([sys.executable, "-m", "robrank", "train", *TRAIN, "--devices", "2", "--run-dir", str(root / "run")],
                          env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "run"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_training_on_two_nodes_equals_two_processes_on_one(trained_on_one_node, nodes, tmp_path):
    run = tmp_path / "run"
    launch = nodes("train").start("train", *TRAIN, "--run-dir", str(run))
    assert launch.wait() == [0, 0], launch.tails()
    _same_training(trained_on_one_node, run)
    _only_rank_0_wrote(launch)
    assert sum("trained 0 epoch(s), 6 step(s)" in o.read_text() for o in launch.outputs) == 1  # global rank 0's summary

    # rank 0 refuses to overwrite the run; every rank stops with its one-line error instead of waiting
    again = nodes("again").start("train", *TRAIN, "--run-dir", str(run))
    assert again.wait() == [1, 1]  # torchrun's code for a failed worker
    assert all("already holds a run; pass --resume" in o.read_text() for o in again.outputs), again.tails()
    assert not again.writes()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_training_resumes_after_the_writing_node_is_killed(trained_on_one_node, nodes, tmp_path):
    run = tmp_path / "run"
    # checkpoints at steps 2 and 4 (and on exit): the writing node dies right after step 4's
    first = nodes("killed", kill_after="last.pt:2").start("train", *TRAIN, "--checkpoint-every", "2", "--run-dir", str(run))
    codes = first.wait()
    assert codes[0] != 0 and codes[1] != 0, first.tails()
    assert _checkpoint(run)["step"] == 4
    second = nodes("resumed").start("train", *TRAIN, "--checkpoint-every", "2", "--run-dir", str(run), "--resume")
    assert second.wait() == [0, 0], second.tails()
    _same_training(trained_on_one_node, run, resumed=True)
    _only_rank_0_wrote(second)
