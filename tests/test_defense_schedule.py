"""The engine tells a defense where training stands before every step (``Defense.schedule``).

A curriculum defense (CA-TRIDE's step size α·e/E and miner margin) depends on it; the
progress must count the steps of the whole run, also across ``--resume`` and under
``--max-steps``.
"""
from __future__ import annotations

from robrank.plugin_api import DefenseRecord, NoDefense, TrainingProgress, hookimpl
from robrank.training import TrainConfig, train
from robrank.plugins import get_registry


class Recording(NoDefense):
    """Plain training that records every progress it is told."""

    name = "recording"
    seen: list[TrainingProgress] = []

    def schedule(self, progress: TrainingProgress) -> None:
        Recording.seen.append(progress)


class Plugin:
    @staticmethod
    @hookimpl
    def register_defenses(register):
        register(DefenseRecord(name="recording", factory=Recording, summary="records the training progress"))


def test_progress_before_every_step_and_across_resume(register_plugin, tmp_path):
    run = tmp_path / "run"
    common = dict(dataset="digits", backbone="lenet", loss="ptripletN", defense="recording", batch_size=8,
                  embedding_dim=8, device="cpu", num_workers=0, run_dir=str(run), seed=0)
    with register_plugin(Plugin):
        Recording.seen = []
        train(TrainConfig(**common, epochs=3, max_steps=2), progress=False, registry=get_registry())
        first = list(Recording.seen)
        Recording.seen = []
        train(TrainConfig(**common, epochs=3, max_steps=5), resume=True, progress=False, registry=get_registry())
        second = list(Recording.seen)
    assert [p.step for p in first] == [0, 1] and [p.step for p in second] == [2, 3, 4]
    assert all(p.epoch == 0 and p.epochs == 3 for p in first + second)
    # planned steps: 3 epochs of the digits split, capped by --max-steps (2, then 5 on resume)
    assert {p.total_steps for p in first} == {2} and {p.total_steps for p in second} == {5}
