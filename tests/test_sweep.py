"""``robrank sweep``: the grid, cell states, idempotent reruns, and the bundled executors.

Cells here are real swipes of an untrained C2F2 on the embedded digits split (rob28, one
batch of two queries), so every executor is checked on what it really runs. The local
executor and submitit's local cluster start fresh processes; the rest runs in-process.
"""
from __future__ import annotations

import json
import os
import signal
import time
import types
from pathlib import Path

import pytest

import robrank
from robrank.errors import ConfigError
from robrank.records import ExecutorRecord
from robrank.sweep import CellJob, ExecutorSettings, Grid, SwipeSettings, load_grid, sweep_states
from robrank.sweep.grid import Cell
from robrank.sweep.state import LOST, cell_dir, cell_lock, cell_state, read_status, update_manifest, write_status
from robrank.testing import write_untrained_run
from robrank.plugins import get_registry

QUICK = ["-p", "rob28", "-m", "1", "-b", "2", "--device", "cpu"]


def _results(sweep_dir: Path, cell_id: str) -> dict:
    return json.loads((cell_dir(sweep_dir, cell_id) / "swipe.json").read_text())


def _numbers(payload: dict) -> dict:
    return {a["spec"]: (a["count"], a["orig"], a["adv"]) for a in payload["attacks"]}


# ---- the grid -------------------------------------------------------------------------------


def test_grid_from_a_file_and_the_command_line(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "elsewhere" / "a").mkdir(parents=True)
    grid_file = tmp_path / "runs" / "grid.toml"
    grid_file.write_text('runs = ["a"]\nprofiles = ["rob28"]\nseeds = [0, 1]\n\n[swipe]\nmax_batches = 2\nsemantics = "fixed"\n')
    cli = Grid(runs=[str(tmp_path / "elsewhere" / "a")], profiles=["pami28", "rob28"], settings={"max_batches": None, "batch_size": 4})
    grid = load_grid(grid_file, registry=get_registry()).merged(cli)
    cells = grid.cells()
    # 2 runs x 2 profiles (rob28 once) x 2 seeds, runs in order, a run relative to the file
    assert len(cells) == 8 and cells[0].target == str((tmp_path / "runs" / "a").resolve())
    assert [(c.profile, c.seed) for c in cells[:4]] == [("rob28", 0), ("rob28", 1), ("pami28", 0), ("pami28", 1)]
    ids = [c.id for c in cells]
    assert len(set(ids)) == 8  # two runs called "a" get different ids
    assert ids[0].startswith("a-") and ids[0].endswith("--rob28--seed0")
    assert Cell.from_dict(cells[5].as_dict()).id == ids[5]
    assert grid.settings == {"max_batches": 2, "semantics": "fixed", "batch_size": 4}  # an unset option keeps the file's


def test_grid_file_models_are_cells_with_paths_relative_to_the_file(tmp_path):
    from robrank.sweep.grid import model_spec

    grid_file = tmp_path / "grids" / "g.toml"
    grid_file.parent.mkdir()
    grid_file.write_text('profiles = ["rob28"]\n\n[[models]]\nmodel = "nets/m.py:build"\nweights = ["trunk=w/t.pt", "w/all.pt"]\n'
                         'metric = "N"\ndataset = "digits"\nnormalize = "imagenet"\n')
    (cell,) = load_grid(grid_file, registry=get_registry()).cells()
    spec = model_spec(cell.target)
    assert cell.source == "model" and cell.id.startswith("m_build-") and cell.id.endswith("--rob28--seed0")
    assert spec.spec == f"{tmp_path / 'grids' / 'nets' / 'm.py'}:build" and spec.metric == "N" and spec.normalize == "imagenet"
    assert [(w.target, w.path) for w in spec.weights] == [("trunk", str(tmp_path / "grids" / "w" / "t.pt")),
                                                          ("", str(tmp_path / "grids" / "w" / "all.pt"))]
    assert Cell.from_dict(cell.as_dict()) == cell


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs = [", "not valid TOML"),
        ('model = ["x"]', "unknown key 'model'"),
        ('models = ["x"]', "models must be "),
        ('[[models]]\nmodel = "m.py:f"\ndataset = "digits"', "table's metric is required"),
        ('[[models]]\nmodel = "m.py:f"\nmetric = "N"\ndataset = "digits"\nlayer = 3', "got 'layer'"),
        ("seeds = ['0']", "seeds must be a list of integers"),
        ("[swipe]\nmax_batch = 2", "unknown swipe setting 'max_batch'"),
        ('[swipe]\namp = "yes"', "swipe setting amp must be bool, got 'yes'"),
        ("[swipe]\nbatch_size = true", "swipe setting batch_size must be int"),
    ],
)
def test_bad_grid_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_grid(path, registry=get_registry())
    assert "\n" not in str(info.value)


# ---- cell states ----------------------------------------------------------------------------


def test_a_cell_is_running_only_while_its_lock_is_held(tmp_path):
    cell = Cell(target=str(tmp_path), profile="rob28")
    update_manifest(tmp_path, [cell], SwipeSettings())
    assert cell_state(tmp_path, cell).state == "pending"
    write_status(tmp_path, cell.id, state="running", attempt=1)
    with cell_lock(tmp_path, cell.id) as mine:
        assert mine and cell_state(tmp_path, cell).state == "running"
        with cell_lock(tmp_path, cell.id, wait=0.1) as other:
            assert not other  # a second worker leaves the cell alone
    lost = cell_state(tmp_path, cell)  # the process died without saying so
    assert (lost.state, lost.error) == ("failed", LOST)
    write_status(tmp_path, cell.id, state="done")
    assert "missing or unfinished" in cell_state(tmp_path, cell).error  # done needs a finished results file


def test_a_changed_setting_needs_another_sweep_dir(tmp_path):
    cell = Cell(target=str(tmp_path), profile="rob28")
    update_manifest(tmp_path, [cell], SwipeSettings(max_batches=1))
    with pytest.raises(robrank.errors.RobrankError, match="max_batches=1, not 2; use another --dir"):
        update_manifest(tmp_path, [cell], SwipeSettings(max_batches=2))
    moved = update_manifest(tmp_path, [cell], SwipeSettings(max_batches=1, device="cuda:1"))  # where it runs may change
    assert moved.settings.device == "cuda:1" and len(moved.cells) == 1


def test_local_slots_follow_the_devices():
    from robrank_plugins.executors.local import device_slots

    assert device_slots(["0", "1", "2", "3"], None, None, 64) == ["0", "1", "2", "3"]  # one cell per GPU
    assert device_slots(["4", "5", "6", "7"], 2, None, 64) == ["4,5", "6,7"]  # CUDA_VISIBLE_DEVICES kept
    assert device_slots(["0", "1", "2"], 2, None, 64) == ["0,1"]  # a GPU left over is not half a cell
    assert device_slots(["0", "1"], None, 1, 64) == ["0"]
    assert device_slots(["0", "1"], 0, None, 16) == [None] * 4  # CPU: half the cores, at most 4
    assert device_slots([], None, None, 2) == [None] and device_slots([], None, 3, 2) == [None] * 3
    with pytest.raises(ConfigError, match="--gpus-per-job 4 but this machine has 2"):
        device_slots(["0", "1"], 4, None, 8)
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        device_slots([], 1, None, 8)



def test_cpu_shares_count_the_cpus_this_process_may_use_not_the_machines(monkeypatch):
    """Under a SLURM or container cpuset the machine may have 64 cores while the job has 4."""
    from robrank import runtime

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert runtime.usable_cpus() == 4
    assert runtime.threads_per_process(2) == 2 and runtime.threads_per_process(8) == 1
    assert runtime.default_num_workers() == min(runtime.MAX_WORKERS, 4)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS and Windows
    assert runtime.usable_cpus() == 64


# ---- an executor plugin, in-process ---------------------------------------------------------


class InlineExecutor:
    """Runs each job in this process, in order: the smallest executor a plugin can register."""

    ran: list[str] = []

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings

    def run(self, jobs):
        for job in jobs:
            InlineExecutor.ran.append(job.cell_id)
            try:
                job()
            except Exception:
                pass  # the cell recorded its error


def register_executors(register):
    register(ExecutorRecord(name="inline", factory=InlineExecutor, summary="cells in this process", options=("note",)))


INLINE = types.SimpleNamespace(register_executors=robrank.hookimpl(register_executors))


def test_rerun_skips_finished_cells_and_restarts_failed_ones(tmp_path, register_plugin, robrank_cli, one_thread):
    good = write_untrained_run(tmp_path / "good")
    bad = write_untrained_run(tmp_path / "bad")
    (bad / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    sweep = tmp_path / "sweep"
    InlineExecutor.ran = []
    with register_plugin(INLINE):
        first = robrank_cli("sweep", str(good), str(bad), *QUICK, "--executor", "inline", "-X", "note=x", "--dir", str(sweep))
        assert first.exit_code == 1, first  # a failed cell: the sweep says so
        states = {s.cell.target: s for s in sweep_states(sweep)}
        assert states[str(good)].state == "done" and states[str(bad)].state == "failed"
        error = states[str(bad)].error
        assert "\n" not in error and "last.pt" in error
        assert error in first.output and "1 done, 1 failed" in first.output
        kept = (cell_dir(sweep, states[str(good)].cell.id) / "swipe.json").read_text()

        write_untrained_run(bad)  # fixed; the same command again
        InlineExecutor.ran = []
        second = robrank_cli("sweep", str(good), str(bad), *QUICK, "--executor", "inline", "--dir", str(sweep))
        assert second.exit_code == 0, second
        assert InlineExecutor.ran == [states[str(bad)].cell.id]  # only the failed cell ran again
        assert (cell_dir(sweep, states[str(good)].cell.id) / "swipe.json").read_text() == kept
        assert read_status(sweep, states[str(bad)].cell.id)["attempt"] == 2
        assert "2 done, 0 failed" in second.output and "ERS" in second.output

        InlineExecutor.ran = []
        third = robrank_cli("sweep", "--dir", str(sweep), "--executor", "inline")  # the recorded sweep, nothing left
        assert third.exit_code == 0 and InlineExecutor.ran == [] and "nothing to run" in third.output

        status = robrank_cli("sweep", "--status", str(sweep))
        assert status.exit_code == 0 and status.output.count(" done ") == 2 and "9/9" in status.output
        listed = json.loads(robrank_cli("sweep", "--status", str(sweep), "--json").stdout)
        assert [(c["target"], c["state"], c["attacks_done"], c["status"]["attempt"]) for c in listed] == [
            (str(good), "done", 9, 1), (str(bad), "done", 9, 2)]
        report = (sweep / "report.txt").read_text()
        assert "good/rob28" in report and "bad/rob28" in report and (sweep / "report.md").exists()
        from robrank.swipe.report import FORMATS

        assert (sweep / "report.html").exists() == ("html" in FORMATS)  # the figures page where robrank has it

        unknown = robrank_cli("sweep", str(good), *QUICK, "--executor", "inline", "-X", "colour=red", "--dir", str(sweep))
        assert unknown.exit_code == 2 and "has no option 'colour'; it accepts: note" in unknown.output


def test_sweep_errors_are_one_line(tmp_path, robrank_cli, untrained_run):
    cases = [
        (["sweep", str(untrained_run), "-p", "rob99", "--dir", str(tmp_path / "s")], "unknown profile 'rob99'"),
        (["sweep", str(untrained_run), "--dir", str(tmp_path / "s")], "give at least one -p PROFILE"),
        (["sweep", "--dir", str(tmp_path / "nothing")], "is not a sweep directory"),
        (["sweep", "--status", str(tmp_path / "nothing")], "is not a sweep directory"),
        (["sweep", str(untrained_run), "-p", "rob28", "--executor", "pbs", "--dir", str(tmp_path / "s")], "unknown executor 'pbs'"),
        (["sweep", str(untrained_run), "-p", "rob28", "-X", "nokey", "--dir", str(tmp_path / "s")], "not KEY=VALUE"),
    ]
    for args, message in cases:
        result = robrank_cli(*args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], (args, result)
    assert not (tmp_path / "s").exists()  # nothing written for a bad request



def test_speed_options_reach_the_cells_and_amp_is_kept_with_the_sweep(tmp_path, register_plugin, robrank_cli, one_thread):
    """--amp changes the numbers, so it is fixed for the sweep like -b and -m; --channels-last only changes the speed."""
    run = write_untrained_run(tmp_path / "run")
    sweep = tmp_path / "sweep"
    with register_plugin(INLINE):
        first = robrank_cli("sweep", str(run), *QUICK, "--amp", "--channels-last", "--executor", "inline", "--dir", str(sweep))
        assert first.exit_code == 0, first
        (state,) = sweep_states(sweep)
        options = _results(sweep, state.cell.id)["options"]
        assert options["amp"] is True
        manifest = json.loads((sweep / "sweep.json").read_text())["swipe"]
        assert manifest["amp"] is True and manifest["channels_last"] is True and manifest["compile"] is False
        # more cells must compute like the first: amp is asked for again (channels-last need not be)
        refused = robrank_cli("sweep", str(run), *QUICK, "--seed", "1", "--executor", "inline", "--dir", str(sweep))
        assert refused.exit_code == 2 and "with amp=True, not False" in refused.output
        second = robrank_cli("sweep", str(run), *QUICK, "--seed", "1", "--amp", "--executor", "inline", "--dir", str(sweep))
        assert second.exit_code == 0, second
        assert len(sweep_states(sweep)) == 2 and all(_results(sweep, s.cell.id)["options"]["amp"] is True for s in sweep_states(sweep))

# ---- the bundled executors ------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_local_executor_runs_cells_in_processes_like_a_swipe(tmp_path, robrank_cli, one_thread):
    from robrank.swipe import swipe

    run = write_untrained_run(tmp_path / "run")
    sweep = tmp_path / "sweep"
    result = robrank_cli("sweep", str(run), *QUICK, "--seed", "0", "--seed", "5", "-j", "2", "--dir", str(sweep))
    assert result.exit_code == 0, result
    states = sweep_states(sweep)
    assert [s.state for s in states] == ["done", "done"] and [s.cell.seed for s in states] == [0, 5]
    for state in states:
        folder = cell_dir(sweep, state.cell.id)
        assert (folder / "stdout.log").exists() and (folder / "stderr.log").exists()
        assert read_status(sweep, state.cell.id)["pid"] != os.getpid()  # a child process ran it
    direct = swipe(run, "rob28", output=tmp_path / "direct.json", batch_size=2, max_batches=1, seed=5, progress=False, registry=get_registry())
    assert _numbers(_results(sweep, states[1].cell.id)) == _numbers(json.loads(direct.read_text()))
    assert _numbers(_results(sweep, states[0].cell.id)) != _numbers(json.loads(direct.read_text()))  # the seed reached the cell
    report = (sweep / "report.txt").read_text()
    assert "run/rob28 seed 0" in report and "run/rob28 seed 5" in report


def test_slurm_executor_on_submitits_debug_cluster(tmp_path, robrank_cli, one_thread):
    pytest.importorskip("submitit")
    run = write_untrained_run(tmp_path / "run")
    sweep = tmp_path / "sweep"
    result = robrank_cli("sweep", str(run), *QUICK, "--executor", "slurm", "-X", "cluster=debug", "--time-limit", "30",
                         "--dir", str(sweep))
    assert result.exit_code == 0, result
    (state,) = sweep_states(sweep)
    assert state.state == "done" and state.attacks_done == 9
    submission = json.loads((cell_dir(sweep, state.cell.id) / "submission.json").read_text())
    assert submission["cluster"] == "debug" and Path(submission["logs"]).is_relative_to(sweep / "jobs")
    assert "submitted as job" in result.output and "ERS" in result.output
    bad = robrank_cli("sweep", str(run), *QUICK, "--executor", "slurm", "-X", "cluster=pbs", "--dir", str(sweep))
    assert bad.exit_code == 2 and "choose one of slurm, local, debug" in bad.output


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_preempted_cell_is_requeued_and_continues(tmp_path):
    """submitit's local cluster: the preemption signal mid-swipe, the checkpoint, the requeue."""
    pytest.importorskip("submitit")
    from robrank_plugins.executors.slurm import SlurmExecutor

    run = write_untrained_run(tmp_path / "run")
    sweep = tmp_path / "sweep"
    cell = Cell(target=str(run), profile="rob28", seed=2)
    update_manifest(sweep, [cell], SwipeSettings(batch_size=4, max_batches=6, device="cpu"))
    executor = SlurmExecutor(ExecutorSettings(sweep_dir=sweep, wait=False, time_limit=30, options={"cluster": "local"}))
    (handle,) = executor.run([CellJob(str(sweep), cell.id)])
    results = cell_dir(sweep, cell.id) / "swipe.json"
    deadline = time.monotonic() + 240
    saved: list = []
    while time.monotonic() < deadline and len(saved) < 1:
        time.sleep(0.2)
        try:
            saved = json.loads(results.read_text())["attacks"]
        except (OSError, ValueError):
            saved = []
    assert saved, "the swipe saved no attack in time"
    first = read_status(sweep, cell.id)
    assert first["state"] == "running" and first["attempt"] == 1
    os.kill(int(first["pid"]), signal.SIGUSR2)  # Slurm's preemption signal, to the task that runs the cell
    handle.result()
    status = read_status(sweep, cell.id)
    assert status["state"] == "done" and status["attempt"] == 2 and "requeued" in status
    final = json.loads(results.read_text())
    assert final["finished"] is not None and len(final["attacks"]) == 9
    before = {a["spec"]: a for a in saved}
    assert all(a == before[a["spec"]] for a in final["attacks"] if a["spec"] in before)  # kept, not recomputed
    log = "".join(p.read_text() for p in (sweep / "jobs").rglob("*.out"))
    assert "this job is preempted" in log and "Requeued job" in log
