"""benchmarks/reproduce.py: commands, tolerance verdicts, and one small row end to end.

The end-to-end test mirrors how the MNIST row was produced: a run started with ``robrank
train`` is continued by the script with ``robrank run --resume`` (no retraining, straight to
the swipe), and the results page is written to a temporary directory, never to docs/.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from robrank.plugins import get_registry

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "reproduce.py"


def _load():
    spec = importlib.util.spec_from_file_location("reproduce", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module
    spec.loader.exec_module(module)
    return module


rp = _load()


def _result(name: str, **values: float):
    row = rp.ROW_BY_NAME[name]
    result = rp.RowResult(row=row, run_dir=Path("/nonexistent") / name, values={m: None for m in rp.METRICS})
    result.values.update({k.replace("R1", "R@1").replace("R2", "R@2"): v for k, v in values.items()})
    return result


def test_rows_are_the_published_table():
    assert [r.name for r in rp.ROWS] == ["mnist-none", "mnist-est", "mnist-act", "fashion-none", "fashion-est", "fashion-act"]
    assert rp.ROW_BY_NAME["mnist-act"].published == {"R@1": 98.6, "R@2": 99.1, "mAP": 98.1, "NMI": 86.4, "ERS": 78.6}
    assert rp.ROW_BY_NAME["fashion-none"].published["ERS"] == 4.5
    assert [r.name for r in rp.parse_rows("fashion-act, mnist-none,fashion-act")] == ["fashion-act", "mnist-none"]
    with pytest.raises(rp.ReproduceError, match="unknown row.*cifar-none.*choose from mnist-none"):
        rp.parse_rows("mnist-none,cifar-none")


def test_command_is_robrank_run_at_the_reference_settings():
    row = rp.ROW_BY_NAME["fashion-act"]
    args = rp.row_command(row, Path("runs/x/fashion-act"), seed=3, device="cuda", data_root="/d",
                          swipe_batch_size=None, small=False, resume=False)
    assert args == ["run", "--plugin", "act", "--dataset", "fashion", "--backbone", "c2f2", "--loss", "ptripletN",
                    "--seed", "3", "--run-dir", "runs/x/fashion-act", "--device", "cuda", "--data-root", "/d", "--no-progress"]
    resumed = rp.row_command(rp.ROW_BY_NAME["mnist-none"], Path("r"), seed=0, device=None, data_root=None,
                             swipe_batch_size=1000, small=False, resume=True)
    assert resumed[:2] == ["run", "--resume"] and resumed[-3:] == ["--swipe-batch-size", "1000", "--no-progress"]
    small = rp.row_command(row, Path("r"), seed=0, device=None, data_root=None, swipe_batch_size=None, small=True, resume=False)
    assert "digits" in small and "c2f2" not in small and "--max-steps" in small
    assert rp.command_text(["run", "--run-dir", "a b"], "/d") == "robrank run --run-dir 'a b'"


def test_variants_are_named_run_with_their_options_and_kept_out_of_the_table():
    assert [v.name for v in rp.VARIANTS] == ["mnist-est-exact", "fashion-est-exact"]
    assert [r.name for r in rp.parse_rows(None)] == [r.name for r in rp.ROWS]  # variants only on request
    variant = rp.parse_rows("fashion-est-exact")[0]
    assert variant.published == rp.ROW_BY_NAME["fashion-est"].published and variant.variant
    args = rp.row_command(variant, Path("r"), seed=0, device="cuda", data_root=None, swipe_batch_size=None,
                          small=False, resume=False)
    assert args[args.index("--plugin") + 1] == "est" and args[-3:] == ["-o", "pairwise_eps=0", "--no-progress"]
    results = [_result(n, ERS=e) for n, e in (("mnist-none", 10.0), ("mnist-est", 40.0), ("mnist-act", 80.0))]
    extra = rp.RowResult(row=variant, run_dir=Path("/nonexistent"), values={m: None for m in rp.METRICS})
    extra.values["ERS"] = 64.0
    text = rp.render(results, small=False, variants=[extra])
    table, rest = text.split("## Variants (not the published settings)")
    assert "fashion-est-exact" not in table and "- MNIST: holds: none 10.0 < EST 40.0 < ACT 80.0" in table
    assert "| fashion-est-exact | Fashion | EST (exact) |" in rest and "64.0 / 36.4 (+27.6 ✗)" in rest
    assert "-o pairwise_eps=0" in rest


def test_tolerance_boundaries_and_verdict():
    # MNIST none published: R@1 99.0 (±1.5), mAP 98.7 (±3), ERS 13.3 (±5)
    r = _result("mnist-none", R1=97.5, mAP=95.6, ERS=18.3)
    assert r.within("R@1") is True and abs(r.diff("R@1") + 1.5) < 1e-9
    assert r.within("mAP") is False and abs(r.diff("mAP") + 3.1) < 1e-9
    assert r.within("ERS") is True and r.within("NMI") is None
    assert rp.cell(r, "R@1") == "97.5 / 99.0 (−1.5 ✓)"
    assert rp.cell(r, "mAP") == "95.6 / 98.7 (−3.1 ✗)"
    assert rp.cell(r, "NMI") == "not yet measured / 84.7"
    assert rp.verdict(r).startswith("no: mAP (so far; R@2, NMI not yet measured")
    assert rp.verdict(_result("mnist-est")) == "not yet measured"


def test_ordering_check():
    rows = [_result("mnist-none", ERS=12.0), _result("mnist-est", ERS=41.0), _result("mnist-act", ERS=80.0)]
    assert rp.ordering(rows, "mnist") == "holds: none 12.0 < EST 41.0 < ACT 80.0"
    rows[1].values["ERS"] = 90.0
    assert rp.ordering(rows, "mnist").startswith("does NOT hold")
    rows[2].values["ERS"] = None
    assert rp.ordering(rows, "mnist") == "not yet measured (ERS missing for ACT)"
    assert rp.ordering(rows, "fashion") == "not yet measured (ERS missing for none, EST, ACT)"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=240)


def test_small_row_end_to_end_resumes_a_trained_run(tmp_path):
    """robrank train, then the script: resume -> swipe -> page, raw files copied, docs/ untouched."""
    docs_md = REPO / "docs" / "results.md"
    before = docs_md.read_bytes() if docs_md.exists() else None
    out_root, md, results_dir = tmp_path / "runs", tmp_path / "results.md", tmp_path / "results"
    run_dir = out_root / "mnist-none"
    from robrank.training import train
    from robrank.training.config import TrainConfig

    # what `robrank train -C digits:lenet:ptripletN --epochs 1 --max-steps 2 --run-dir ...` does, in-process
    train(TrainConfig(dataset="digits", backbone="lenet", loss="ptripletN", seed=0, device="cpu", epochs=1,
                      max_steps=2, run_dir=str(run_dir)), progress=False, registry=get_registry())
    checkpoint = run_dir / "checkpoints" / "last.pt"
    stamp = checkpoint.stat().st_mtime_ns

    common = ["--small", "--rows", "mnist-none", "--device", "cpu", "--out-root", str(out_root),
              "--results-md", str(md), "--results-dir", str(results_dir)]
    done = _run(str(SCRIPT), *common, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    history = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 1  # resumed a finished training: nothing retrained
    swipe = json.loads((run_dir / "swipe-rob28.json").read_text())
    assert swipe["finished"] and len(swipe["attacks"]) == 9 and swipe["max_batches"] == 1
    record = json.loads((run_dir / "reproduce.json").read_text())
    assert record["status"] == "finished" and record["resumed"] is True
    assert record["command"].endswith(
        f"robrank run --resume --plugin none --dataset digits --backbone lenet --loss ptripletN --seed 0 "
        f"--run-dir {run_dir} --device cpu --epochs 1 --max-steps 2 -m 1 --swipe-batch-size 4 --no-progress")

    text = md.read_text()
    assert "SMALL CONFIGURATION" in text and "not comparable" in text
    last = history[-1]
    ers = swipe["ers"]["ers"]
    ours = {"R@1": 100 * last["R@1"], "R@2": 100 * last["R@2"], "mAP": 100 * last["mAP"], "NMI": 100 * last["NMI"], "ERS": ers}
    published = rp.ROW_BY_NAME["mnist-none"].published
    line = next(x for x in text.splitlines() if x.startswith("| mnist-none | MNIST | none |"))
    for metric in rp.METRICS:
        diff = f"{ours[metric] - published[metric]:+.1f}".replace("-", "−")
        assert f"{ours[metric]:.1f} / {published[metric]:.1f} ({diff} " in line, metric
    for other in ("mnist-est", "mnist-act", "fashion-none", "fashion-est", "fashion-act"):
        row_line = next(x for x in text.splitlines() if x.startswith(f"| {other} |"))
        assert row_line.count("not yet measured") == 6, row_line
        assert f"{rp.ROW_BY_NAME[other].published['ERS']:.1f}" in row_line
    assert "- MNIST: not yet measured (ERS missing for EST, ACT)" in text
    assert "robrank run --resume" in text
    assert "AMD" in text or "Intel" in text or "cores" in text  # the CPU model
    assert "### mnist-none" in text and "| CA+ | CA- | QA+ | QA- | TMA | ES:D | ES:R | LTM | GTM | GTT | ERS |" in text
    assert f"{ers:.1f}" in text

    copied = sorted(p.name for p in (results_dir / "mnist-none").iterdir())
    assert copied == ["config.json", "metrics.jsonl", "reproduce.json", "swipe-rob28.json"]
    assert not list(results_dir.rglob("*.pt"))
    assert sorted(p.name for p in results_dir.iterdir()) == ["ers.png", "mnist-none"]
    # the ERS figure of the finished row, linked from the page (a quick swipe: drawn as partial)
    assert (results_dir / "ers.png").read_bytes()[:4] == b"\x89PNG"
    assert "![Rescaled ERS scores per attack](results/ers.png)" in text

    # --collect-only: reads the run dirs again, runs nothing, same table
    md.unlink()
    assert rp.main([*common, "--collect-only"]) == 0
    assert checkpoint.stat().st_mtime_ns == stamp
    assert line in md.read_text()
    assert (docs_md.read_bytes() if docs_md.exists() else None) == before

    # an unfinished swipe (killed after 4 attacks): clean metrics stay, ERS is "not yet measured"
    partial = dict(swipe, attacks=swipe["attacks"][:4], finished=None)
    partial.pop("ers")
    from robrank.swipe.schema import coverage

    partial["coverage"] = coverage(partial)  # what the killed swipe itself would have written
    (run_dir / "swipe-rob28.json").write_text(json.dumps(partial))
    assert rp.main([*common, "--collect-only"]) == 0
    text = md.read_text()
    line = next(x for x in text.splitlines() if x.startswith("| mnist-none | MNIST | none |"))
    assert "not yet measured / 13.3" in line and f"{ours['R@1']:.1f} / 99.0" in line
    assert "ERS swipe stopped (4/9 attacks), not yet measured" in text
    assert "Swipe unfinished: the 4 finished columns (CA+, CA-, QA+, QA-)" in text
