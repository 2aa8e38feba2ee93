"""The third-party plugin promise, end to end.

The example distributions under ``examples/`` are installed for real and driven through the
real ``robrank`` CLI in subprocesses with ``ROBRANK_LOAD_PLUGINS`` unset, so they are found
the way a user's install finds them: through their ``robrank`` entry points. Nothing is
registered by hand on that path. When this clone's examples are already installed (.ci/run
does that) they are used as they are; otherwise ``pip install --target`` puts them in a
temporary folder that only the test subprocesses see (``PYTHONPATH``), so running the tests
never changes the developer's environment.

The second half registers, in-process, one plugin of every kind the examples do not cover
(backbone, loss, miner, defense; the same code as docs/plugins.md shows) and trains with it
through the real training engine, and checks that the documentation's code examples still
compile and register.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import robrank
from robrank.records import BackboneRecord, DefenseRecord, LossRecord, MinerRecord
from robrank.plugins import get_registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {"robrank-myattack": REPO / "examples" / "robrank-myattack", "robrank-mydataset": REPO / "examples" / "robrank-mydataset"}
ROB28 = "eps=0.30196:alpha=0.011764:pgditer=32"


#: a folder holding a temporary install of the examples, when this environment lacks them
_EXTRA_PATH: list[str] = []


def _env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a subprocess that must see the examples."""
    env = dict(os.environ if base is None else base)
    if _EXTRA_PATH:
        env["PYTHONPATH"] = os.pathsep.join([*_EXTRA_PATH, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _installed(dist: str, env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(version, location of its files) as a fresh interpreter sees it, or None when absent."""
    code = (
        "import importlib.metadata as m, sys\n"
        "try:\n    d = m.distribution(sys.argv[1])\nexcept m.PackageNotFoundError:\n    sys.exit(0)\n"
        "import importlib.util, os\n"
        "top = (d.read_text('top_level.txt') or '').split() or [sys.argv[1].replace('-', '_')]\n"
        "spec = importlib.util.find_spec(top[0])\n"
        "print(d.version, os.path.realpath(spec.origin) if spec and spec.origin else '')"
    )
    out = subprocess.run([sys.executable, "-c", code, dist], capture_output=True, text=True, timeout=60, env=env).stdout.split()
    return (out[0], out[1] if len(out) > 1 else "") if out else None


@pytest.fixture(scope="module")
def examples_installed(tmp_path_factory) -> dict[str, str]:
    """The examples' versions; installs them into a temporary folder when this clone's are not installed."""
    found = {dist: _installed(dist) for dist in EXAMPLES}
    ours = all(f is not None and Path(f[1]).is_relative_to(path.resolve()) for (dist, f), path in zip(found.items(), EXAMPLES.values()))
    if ours:
        return {dist: f[0] for dist, f in found.items()}
    target = tmp_path_factory.mktemp("examples-site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *map(str, EXAMPLES.values())],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"could not install the examples into a temporary folder: {done.stderr.strip().splitlines()[-1:]}")
    _EXTRA_PATH[:] = [str(target)]
    versions = {}
    for dist, path in EXAMPLES.items():
        seen = _installed(dist, _env())
        assert seen is not None and Path(seen[1]).is_relative_to(target.resolve()), f"{dist} not found in {target} after pip install"
        versions[dist] = seen[0]
    return versions


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m robrank ARGS`` with real entry-point discovery (ROBRANK_LOAD_PLUGINS unset)."""
    clean = {k: v for k, v in _env().items() if k not in ("ROBRANK_LOAD_PLUGINS", "ROBRANK_STRICT_PLUGINS")}
    clean.update(env or {})
    return subprocess.run([sys.executable, "-m", "robrank", *args], env=clean, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    return result


# ------------------------------------------------------------------------ installed examples, real CLI


def test_list_shows_installed_plugins_with_distribution_and_version(examples_installed):
    payload = json.loads(ok(cli("list", "--json")).stdout)
    by_name = {(kind, c["name"]): c for kind, comps in payload["components"].items() for c in comps}
    mica = by_name[("attacks", "MICA")]
    assert mica["provider"] == {"distribution": "robrank-myattack", "version": examples_installed["robrank-myattack"], "plugin": "myattack"}
    assert mica["required"] == ["pm", "W"] and mica["signed"] is True
    assert by_name[("profiles", "mi28")]["provider"]["distribution"] == "robrank-myattack"
    for name, size, profile in (("imagefolder", 224, "rob224"), ("imagefolder28", 28, "rob28")):
        record = by_name[("datasets", name)]
        assert record["provider"]["distribution"] == "robrank-mydataset"
        assert (record["image_size"], record["profile"], record["num_test_classes"]) == (size, profile, 0)
    assert by_name[("attacks", "CA")]["provider"]["distribution"] == "robrank"  # the bundled ones sit beside them
    ours = [f for f in payload["failures"] if f["distribution"] in EXAMPLES]
    assert ours == []

    text = ok(cli("list", "attacks")).stdout
    [line] = [ln for ln in text.splitlines() if ln.strip().startswith("MICA ")]
    assert line.rstrip().endswith(f"(robrank-myattack {examples_installed['robrank-myattack']})")


def test_plugin_attack_runs_through_robrank_attack(examples_installed, tiny_run):
    spec = f"MICA:pm=+:W=1:{ROB28}"
    payload = json.loads(ok(cli("attack", str(tiny_run), "-A", spec, "-m", "1", "-b", "32", "--json")).stdout)
    assert payload["spec"] == spec and payload["count"] == 32
    # CA+ at 77/255 on a tiny model: the candidate climbs from about the median to near the top
    assert payload["orig"]["prank"] > 20  # percent
    assert payload["adv"]["prank"] < payload["orig"]["prank"] - 10


def test_plugin_profile_swipes_and_reports(examples_installed, tiny_run, tmp_path):
    out = tmp_path / "swipe-mi28.json"
    ok(cli("swipe", str(tiny_run), "-p", "mi28", "-m", "1", "-b", "8", "--output", str(out), "--no-progress"))
    results = json.loads(out.read_text())
    assert results["profile"] == "mi28" and results["finished"] is not None
    specs = [a["spec"] for a in results["attacks"]]
    assert specs == [f"{a}:pm={s}:W=1:{ROB28}" for a in ("MICA", "CA") for s in "+-"]
    by_spec = {a["spec"]: a for a in results["attacks"]}
    # same queries, same clean ranking for MICA and CA: only the update rule differs
    for sign in "+-":
        assert by_spec[f"MICA:pm={sign}:W=1:{ROB28}"]["orig"] == by_spec[f"CA:pm={sign}:W=1:{ROB28}"]["orig"]

    report = ok(cli("report", str(out))).stdout
    rows = [[c for c in line.split() if c not in ("\u2191", "\u2193")] for line in report.splitlines() if line.startswith(("MICA:", "CA:"))]
    # -m 1 is a partial result: every attack row carries the marker, and a footnote says why
    assert all(r[0].endswith("*") for r in rows) and "8 of 364 queries" in report
    rows = [[r[0].rstrip("*"), *r[1:]] for r in rows]
    # the report asks each attack how to show its metrics: MICA inherits CA's display, so its
    # rows are in pjswipe's percentile form too (percent of the ranking, out of 100)
    assert [r[0] for r in rows if r[1] == "PCTL"] == specs
    shown = {r[0]: (float(r[2]), float(r[3])) for r in rows}
    for spec in specs:
        expected = (by_spec[spec]["orig"]["prank"], by_spec[spec]["adv"]["prank"])
        assert shown[spec] == pytest.approx(expected, abs=0.051)
        assert [r[-2:] for r in rows if r[0] == spec] == [["/", "100.0"]]


def test_plugin_subcommand(examples_installed):
    lines = ok(cli("myattack-info")).stdout.splitlines()
    assert f"spec: MICA:pm=+:W=1:{ROB28}" in lines
    assert any("MI-FGSM" in line for line in lines)
    assert "myattack-info" in ok(cli("--help")).stdout


def test_robrank_run_on_an_imagefolder_tree_with_a_plugin_profile(examples_installed, tmp_path):
    """A dataset from one plugin, a swipe profile from another, composed by `robrank run`."""
    tree = tmp_path / "photos"
    code = "import sys\nfrom robrank_mydataset.demo import write_demo_tree\nwrite_demo_tree(sys.argv[1], classes=6, per_class=4, size=32)"
    subprocess.run([sys.executable, "-c", code, str(tree)], check=True, timeout=120, env=_env())
    run_dir = tmp_path / "run"
    result = ok(
        cli(
            "run", "--dataset", "imagefolder28", "--data-root", str(tree), "--backbone", "lenet", "--embedding-dim", "16",
            "--epochs", "1", "--max-steps", "2", "--batch-size", "4", "--device", "cpu", "--run-dir", str(run_dir),
            "-p", "mi28", "-m", "1", "--swipe-batch-size", "4", "--no-progress",
        )  # fmt: skip
    )
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["dataset"] == "imagefolder28" and config["run"]["profile"] == "mi28"
    swipe = json.loads((run_dir / "swipe-mi28.json").read_text())
    assert swipe["queries"] == 12  # 3 test classes (the last half of 6, sorted) x 4 images
    assert [a["type"] for a in swipe["attacks"]] == ["MICA", "MICA", "CA", "CA"]
    assert "MICA:pm=+" in result.stdout  # the report printed at the end


@pytest.mark.slow
def test_robrank_run_on_a_224_imagefolder_tree(examples_installed, tmp_path):
    tree = tmp_path / "photos"
    code = "import sys\nfrom robrank_mydataset.demo import write_demo_tree\nwrite_demo_tree(sys.argv[1], classes=4, per_class=4, size=64, fmt='jpg')"
    subprocess.run([sys.executable, "-c", code, str(tree)], check=True, timeout=120, env=_env())
    run_dir = tmp_path / "run"
    ok(
        cli(
            "run", "--dataset", "imagefolder", "--data-root", str(tree), "--pretrained", "none", "--embedding-dim", "16",
            "--epochs", "1", "--max-steps", "2", "--batch-size", "2", "--device", "cpu", "--run-dir", str(run_dir),
            "-p", "mi224", "-m", "1", "--swipe-batch-size", "2", "--no-progress",
        )  # fmt: skip
    )
    swipe = json.loads((run_dir / "swipe-mi224.json").read_text())
    assert swipe["dataset"] == "imagefolder" and len(swipe["attacks"]) == 4


@pytest.mark.slow
def test_the_examples_own_test_suites_pass(examples_installed):
    env = {k: v for k, v in _env().items() if k != "ROBRANK_LOAD_PLUGINS"}
    paths = [str(p / "tests") for p in EXAMPLES.values()]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]


# ------------------------------------------------------------------------ every other kind, in-process


class DocsPlugin:
    """A backbone, a loss, a miner and a defense, as docs/plugins.md writes them; counts its calls."""

    def __init__(self) -> None:
        self.calls = {"backbone": 0, "mine": 0, "defense": 0}

    @robrank.hookimpl
    def register_backbones(self, register):
        def tiny_mlp(embedding_dim=None, pretrained=None, weights=None):
            self.calls["backbone"] += 1
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, embedding_dim or 64))

        register(BackboneRecord(name="tinymlp", factory=tiny_mlp, summary="one linear layer", input_size=28, channels=1, default_embedding_dim=64))

    @robrank.hookimpl
    def register_miners(self, register):
        from robrank.losses.base import Miner, spc2_anchors_positives

        plugin = self

        class NextPairMiner(Miner):
            name = "nextpair"

            def mine(self, embeddings, labels):
                plugin.calls["mine"] += 1
                a, p = spc2_anchors_positives(embeddings.shape[0], embeddings.device)
                return a, p, torch.roll(a, -1)

        register(MinerRecord(name="nextpair", factory=NextPairMiner, summary="next pair's anchor as negative"))

    @robrank.hookimpl
    def register_losses(self, register):
        from robrank.losses.base import Criterion

        class CentroidPull(Criterion):
            family = "centroid"

            def forward(self, embeddings, labels):
                x = self.embed(embeddings)
                return (x[0::2] - x[1::2]).pow(2).sum(-1).mean()

        register(LossRecord(name="centroid", factory=lambda metric, miner=None, **kw: CentroidPull(metric, miner), summary="pull pairs together", family="centroid"))

    @robrank.hookimpl
    def register_defenses(self, register):
        from robrank.plugin_api import SIZE_28, SIZE_224, Defense, Param

        plugin = self

        class InputNoise(Defense):
            name = "noise"
            params = (Param("eps", float, None, low=0.0, high=1.0, help="noise amplitude in [0, 1] pixels"),)
            family_defaults = {SIZE_28: {"eps": 77 / 255}, SIZE_224: {"eps": 8 / 255}}

            def loss(self, model, criterion, images, labels):
                plugin.calls["defense"] += 1
                eps = float(self.options["eps"])
                noisy = (images + eps * (2 * torch.rand_like(images) - 1)).clamp(0, 1)
                return criterion(model(noisy), labels)

        register(DefenseRecord(name="noise", factory=InputNoise, summary="uniform input noise", constraints="any loss, any metric"))


def test_every_component_kind_plugs_into_the_training_engine(register_plugin, tmp_path):
    from robrank.losses import build_criterion, resolve_loss
    from robrank.models.backbone import build_backbone
    from robrank.plugins import get_registry
    from robrank.testing import train_tiny_run

    plugin = DocsPlugin()
    with register_plugin(plugin, distribution="robrank-docs-example", version="9.9"):
        registry = get_registry()
        assert {registry.component(k, n).provider.distribution for k, n in (("backbones", "tinymlp"), ("miners", "nextpair"), ("losses", "centroid"), ("defenses", "noise"))} == {"robrank-docs-example"}

        # the miner through the loss-name machinery, on a hand-made SPC-2 batch of 3 pairs
        criterion = build_criterion(resolve_loss("ptripletN", miner="nextpair", registry=get_registry()), registry=get_registry())
        a, p, n = criterion.miner(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]))
        assert (a.tolist(), p.tolist(), n.tolist()) == ([0, 2, 4], [1, 3, 5], [2, 4, 0])
        # the loss by hand: pairs (e0, e0) and (e1, -e1) on the unit sphere -> (0 + 4) / 2
        centroid = build_criterion(resolve_loss("centroid", metric="N", registry=get_registry()), registry=get_registry())
        x = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, -5.0]])
        assert float(centroid(x, torch.tensor([0, 0, 1, 1]))) == pytest.approx(2.0)
        assert build_backbone("tinymlp", embedding_dim=8, registry=get_registry())(torch.rand(5, 1, 28, 28)).shape == (5, 8)

        # and the real engine trains with all of them at once
        before = dict(plugin.calls)
        run = train_tiny_run(tmp_path / "run", backbone="tinymlp", miner="nextpair", defense="noise", steps=3, batch_size=8)
        config = json.loads((run / "config.json").read_text())["config"]
        assert (config["backbone"], config["miner"], config["defense"]) == ("tinymlp", "nextpair", "noise")
        assert config["defense_options"]["eps"] == pytest.approx(77 / 255)  # the engine's 28x28 defaults reach the plugin
        assert plugin.calls["defense"] - before["defense"] == 3
        assert plugin.calls["mine"] - before["mine"] >= 3
        run2 = train_tiny_run(tmp_path / "run2", backbone="tinymlp", loss="centroid", metric="N", steps=2, batch_size=8)
        assert json.loads((run2 / "config.json").read_text())["config"]["loss"] == "centroid"


def _docs_blocks() -> list[str]:
    text = (REPO / "docs" / "plugins.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_docs_code_examples_compile_and_self_contained_ones_register(register_plugin):
    blocks = _docs_blocks()
    assert len(blocks) >= 8
    modules = []
    for i, code in enumerate(blocks):
        compile(code, f"docs/plugins.md[python block {i}]", "exec")
        if "from ." in code or not re.search(r"@(robrank\.)?hookimpl\b", code) or "def test_" in code:
            continue  # part of a package (relative imports) or not a plugin
        module = types.ModuleType(f"docs_example_{i}")
        exec(compile(code, module.__name__, "exec"), module.__dict__)
        modules.append(module)
    assert len(modules) >= 5
    with register_plugin(*modules, distribution="robrank-docs") as host:
        assert host.failures == []
        for kind, name in (("backbones", "tinymlp"), ("losses", "centroid"), ("miners", "nextpair"), ("defenses", "noise"),
                           ("profiles", "mi28"), ("attacks", "PUSHNN"), ("datasets", "noise4"), ("defenses", "jitter")):
            assert host.registry.component(kind, name).provider.distribution == "robrank-docs"
        assert "myattack-info" in host.commands()
        smallest_plugins_work(host.registry)


def smallest_plugins_work(registry):
    """The page's smallest attack, dataset and defense do what they say (imported from robrank.plugin_api only)."""
    from robrank.plugin_api import ConfigError, Gallery, build_attack, load_split, parse_spec

    test = load_split("noise4", "test", registry=registry)
    assert len(test) == 64 and sorted(set(int(y) for y in test.labels)) == [0, 1, 2, 3]
    spec = parse_spec("PUSHNN:eps=0.3:alpha=0.05:pgditer=5", registry)
    assert [p.name for p in registry.get("attacks", "PUSHNN").params][:3] == ["eps", "alpha", "pgditer"]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 8))
    model.metric = "E"
    gallery = Gallery(embeddings=model(torch.stack([test[i][0] for i in range(64)])).detach(), labels=test.labels, metric="E")
    attack = build_attack(spec, registry=registry)
    images = torch.stack([test[i][0] for i in range(8)])
    ctx = attack.context(model, gallery, images, test.labels[:8], torch.arange(8), self_slot=torch.arange(8))
    before = ctx.dist(ctx.clean).gather(1, ctx.sel.nearest)
    adversarial = attack.perturb(model, images, ctx)
    after = ctx.dist(model(adversarial)).gather(1, ctx.sel.nearest)
    assert (after >= before - 1e-6).all() and (after > before).any()  # pushed away, within eps
    assert float((adversarial - images).abs().max()) <= 0.3 + 1e-6
    jitter = registry.create("defenses", "jitter", scale=0.2)
    assert jitter.options == {"scale": 0.2}
    with pytest.raises(ConfigError, match="its options are: scale"):
        registry.create("defenses", "jitter", scal=0.2)


# ------------------------------------------------------------------------ robrank.testing itself


def test_tiny_run_is_a_trained_loadable_run(tiny_run):
    from robrank.models.checkpoint import load_run
    from robrank.testing import TINY_RUN

    run = load_run(tiny_run, registry=get_registry())
    assert (run.dataset, run.config["backbone"], run.metric) == ("digits", TINY_RUN["backbone"], "N")
    history = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert history[-1]["step"] == TINY_RUN["steps"]
    assert history[-1]["R@1"] > 0.5  # 10 classes: chance is 0.1, so the model ranks something


def test_robrank_cli_keeps_the_traceback_of_a_crash_but_not_of_a_user_error(register_plugin, robrank_cli):
    class Crashing:
        @staticmethod
        @robrank.hookimpl
        def register_commands(cli):
            @cli.command(name="crash")
            def crash():
                raise ZeroDivisionError("plugin bug")

    with register_plugin(Crashing()):
        crashed = robrank_cli("crash")
        refused = robrank_cli("attack", ".", "-A", "CA:pm=*:W=1")
    assert crashed.exit_code == 1 and "ZeroDivisionError: plugin bug" in crashed.traceback
    assert "ZeroDivisionError" in repr(crashed)
    assert refused.exit_code == 2 and refused.traceback == ""
    assert "field pm must be + or -" in refused.output


def test_a_plugin_command_takes_the_runtime_options_of_the_built_in_ones(register_plugin, robrank_cli):
    """-D, -b and the speed flags are declared once; a plugin command gets the same options and one value."""
    from robrank.plugin_api import RuntimeOptions, runtime_options

    class WithRuntime:
        @staticmethod
        @robrank.hookimpl
        def register_commands(cli):
            @cli.command(name="runtime-echo")
            @runtime_options("Queries per batch.", speed="attack")
            def echo(runtime: RuntimeOptions):
                print(json.dumps({**runtime.fields(), "given": sorted(runtime.given)}))

    with register_plugin(WithRuntime()):
        given = robrank_cli("runtime-echo", "-b", "3", "-D", "cpu", "--channels-last")
        refused = robrank_cli("runtime-echo", "-b", "0")
        attack_help = robrank_cli("attack", "--help").output
        plugin_help = robrank_cli("runtime-echo", "--help").output
    assert given.exit_code == 0, given
    assert json.loads(given.stdout) == {"device": "cpu", "batch_size": 3, "num_workers": None, "amp": False, "channels_last": True,
                                        "compile": False, "given": ["batch_size", "channels_last", "device"]}
    assert refused.exit_code == 2 and "0 is not in the range x>=1" in refused.output
    for line in ("-D, --device TEXT", "--channels-last", "--compile"):
        assert line in plugin_help and line in attack_help
