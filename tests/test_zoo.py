"""The model zoo: ``register_models`` records loaded as ``--model zoo:NAME`` (no network: file:// URLs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import robrank
from robrank.errors import CheckpointError, ConfigError
from robrank.io import file_sha256
from robrank.models import zoo
from robrank.models.external import ModelSpec, load_model, state_digest
from robrank.records import ModelRecord
from robrank_plugins.backbones.small_nets import LeNet
from robrank.plugins import get_registry

EMBED = 16
QUICK = ["-b", "8", "-m", "1", "--no-progress"]

BUILDER = f'''
from robrank_plugins.backbones.small_nets import LeNet


def make():
    return LeNet({EMBED})
'''


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return LeNet(EMBED)


class Zoo:
    """Three entries: a callable builder, a lazy ``module:callable`` one, and one whose checksum is wrong."""

    @robrank.hookimpl
    def register_profiles(self, register):
        register(robrank.ProfileRecord(name="zoo-one", factory=lambda: ["ES"], summary="one quick attack"))

    def __init__(self, weights, other):
        self.weights, self.other = weights, other

    @robrank.hookimpl
    def register_models(self, register):
        url = self.weights.as_uri()
        register(ModelRecord(name="TinyNet", factory=lambda: LeNet(EMBED), summary="a LeNet on digits", dataset="digits",
                             metric="N", weights=url, sha256=file_sha256(self.weights), paper="https://example.org/paper",
                             licence="MIT"))
        register(ModelRecord(name="lazynet", factory="zoo_builder:make", summary="the same weights, a lazy builder",
                             dataset="digits", metric="N", weights=str(self.weights), sha256=file_sha256(self.weights)))
        register(ModelRecord(name="badsum", factory=lambda: LeNet(EMBED), summary="a checksum that does not match",
                             dataset="digits", metric="N", weights=self.other.as_uri(), sha256=file_sha256(self.weights)))


@pytest.fixture
def zoo_env(tmp_path, monkeypatch, register_plugin):
    net, other = _net(0), _net(1)
    weights, other_file = tmp_path / "src" / "tiny.pt", tmp_path / "src" / "other.pt"
    weights.parent.mkdir()
    torch.save(net.state_dict(), weights)
    torch.save(other.state_dict(), other_file)
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "zoo_builder.py").write_text(BUILDER)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    cache = tmp_path / "cache"
    monkeypatch.setenv(zoo.ENV_CACHE, str(cache))
    with register_plugin(Zoo(weights, other_file)):
        yield {"net": net, "weights": weights, "cache": cache, "tmp": tmp_path}


def test_a_file_url_entry_is_fetched_checked_cached_and_loaded(zoo_env):
    loaded = load_model(ModelSpec.create("zoo:tinynet"), registry=get_registry())  # the case of a name is forgiven, the record's is recorded
    assert loaded.dataset == "digits" and loaded.metric == "N"
    cached = list((zoo_env["cache"] / "models").iterdir())
    assert [p.name for p in cached] == [f"{file_sha256(zoo_env['weights'])[:16]}-tiny.pt"]
    assert file_sha256(cached[0]) == file_sha256(zoo_env["weights"])
    assert loaded.source["sha256"] == state_digest(zoo_env["net"])  # the weights actually used are the registered ones
    assert loaded.source["spec"] == "zoo:TinyNet"
    assert loaded.source["zoo"]["name"] == "TinyNet" and loaded.source["zoo"]["licence"] == "MIT"
    assert loaded.source["zoo"]["provider"]["distribution"] == "test-plugin"
    assert zoo.zoo_name(loaded.model_block()) == "TinyNet" and zoo.zoo_name({"model": loaded.model_block()}) == "TinyNet"
    assert zoo.zoo_name({"model": {"kind": "external", "spec": "timm:resnet18"}}) is None
    assert zoo.zoo_name({"checkpoint": "run/last.pt"}) is None
    # the second load reads the cache: the source may be gone
    zoo_env["weights"].rename(zoo_env["weights"].with_suffix(".moved"))
    again = load_model(ModelSpec.create("zoo:TinyNet"), registry=get_registry())
    assert again.source["sha256"] == loaded.source["sha256"]


def test_a_corrupted_cache_is_fetched_again(zoo_env):
    load_model(ModelSpec.create("zoo:TinyNet"), registry=get_registry())
    cached = next((zoo_env["cache"] / "models").iterdir())
    cached.write_bytes(b"not the weights")
    assert load_model(ModelSpec.create("zoo:TinyNet"), registry=get_registry()).source["sha256"] == state_digest(zoo_env["net"])
    assert file_sha256(cached) == file_sha256(zoo_env["weights"])


def test_a_wrong_sha256_is_refused_and_nothing_is_cached(zoo_env, robrank_cli):
    with pytest.raises(CheckpointError, match="sha256"):
        load_model(ModelSpec.create("zoo:badsum"), registry=get_registry())
    result = robrank_cli("eval", "--model", "zoo:badsum")
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result
    assert "zoo:badsum" in result.output and "sha256" in result.output and "Traceback" not in result.output
    assert not any((zoo_env["cache"] / "models").iterdir())


def test_a_local_path_entry_with_a_lazy_builder(zoo_env):
    loaded = load_model(ModelSpec.create("zoo:lazynet"), registry=get_registry())
    assert loaded.source["sha256"] == state_digest(zoo_env["net"])
    assert not (zoo_env["cache"] / "models").exists()  # a path is read where it is, not copied


def test_cli_eval_and_api_agree_with_the_same_weights_given_by_hand(zoo_env, robrank_cli):
    result = robrank_cli("eval", "--model", "zoo:TinyNet", "--json")
    assert result.exit_code == 0, result
    through_zoo = json.loads(result.stdout)
    assert through_zoo["model"]["zoo"]["name"] == "TinyNet" and through_zoo["model"]["metric"] == "N"
    by_hand = robrank_cli("eval", "--model", "zoo_builder:make", "--weights", str(zoo_env["weights"]), "--metric", "N",
                          "--dataset", "digits", "--json")
    assert by_hand.exit_code == 0, by_hand
    expected = json.loads(by_hand.stdout)
    assert {k: v for k, v in through_zoo.items() if k != "model"} == {k: v for k, v in expected.items() if k != "model"}
    assert through_zoo["model"]["sha256"] == expected["model"]["sha256"]
    api = robrank.evaluate("zoo:TinyNet", batch_size=8, max_batches=1)
    assert zoo.zoo_name(api.payload) == "TinyNet" and api.payload["model"]["sha256"] == expected["model"]["sha256"]


def test_swipe_with_a_zoo_model_writes_its_results_in_the_working_directory(zoo_env, robrank_cli, monkeypatch):
    monkeypatch.chdir(zoo_env["tmp"])
    result = robrank_cli("swipe", "--model", "zoo:TinyNet", "-p", "zoo-one", *QUICK)
    assert result.exit_code == 0, result
    written = sorted(p.name for p in zoo_env["tmp"].glob("*.json"))
    assert written == ["zoo-TinyNet.swipe-zoo-one.json"], written
    assert zoo.zoo_name(json.loads((zoo_env["tmp"] / written[0]).read_text())) == "TinyNet"
    assert not list((zoo_env["cache"] / "models").glob("*.json"))  # nothing written into the cache


@pytest.mark.parametrize("args, needle", [
    (["--metric", "E"], "metric"),
    (["--dataset", "mnist"], "dataset"),
    (["--weights", "x.pt"], "--weights"),
    (["--normalize", "imagenet"], "normalize"),
])
def test_options_that_contradict_the_entry_are_one_line_errors(zoo_env, robrank_cli, args, needle):
    result = robrank_cli("eval", "--model", "zoo:TinyNet", *args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result
    assert needle in result.output and "zoo:TinyNet" in result.output


def test_an_unknown_entry_lists_the_registered_ones(zoo_env, robrank_cli):
    result = robrank_cli("eval", "--model", "zoo:nosuch")
    assert result.exit_code == 2 and "TinyNet" in result.output and len(result.output.strip().splitlines()) == 1, result


def test_list_models_shows_provenance(zoo_env, robrank_cli):
    text = robrank_cli("list", "models")
    assert text.exit_code == 0, text
    line = next(l for l in text.output.splitlines() if l.strip().startswith("TinyNet"))
    assert "digits" in line and "MIT" in line and "test-plugin" in line and file_sha256(zoo_env["weights"])[:12] in line
    payload = json.loads(robrank_cli("list", "models", "--json").stdout)
    entry = next(c for c in payload["components"]["models"] if c["name"] == "TinyNet")
    assert entry["provider"]["distribution"] == "test-plugin" and entry["sha256"] == file_sha256(zoo_env["weights"])
    assert entry["weights"] == zoo_env["weights"].as_uri() and entry["paper"] == "https://example.org/paper"
    lazy = next(c for c in payload["components"]["models"] if c["name"] == "lazynet")
    assert lazy["builder"] == "zoo_builder:make"


def test_a_record_without_a_checksum_fails_its_plugin(robrank_cli):
    class Broken:
        @robrank.hookimpl
        def register_models(self, register):
            register(ModelRecord(name="nosum", factory=lambda: LeNet(EMBED), summary="x", dataset="digits", metric="N",
                                 weights="https://example.org/w.pt", sha256=""))

    from robrank.testing import registered

    with registered(Broken()) as host:
        assert ("models", "nosum") not in host.registry
        assert any("sha256" in f.error for f in host.failures)


def test_zoo_options_are_checked_in_the_api(zoo_env):
    with pytest.raises(ConfigError, match="metric"):
        robrank.evaluate("zoo:TinyNet", metric="C")


def test_a_grid_file_and_sweep_take_a_zoo_entry(zoo_env, tmp_path):
    from robrank.sweep.grid import load_grid, model_spec

    grid_file = tmp_path / "grid.toml"
    grid_file.write_text('profiles = ["zoo-one"]\n\n[[models]]\nmodel = "zoo:tinynet"\n')
    (target,) = load_grid(grid_file, registry=get_registry()).models
    spec = model_spec(target)
    assert (spec.spec, spec.metric, spec.dataset, spec.normalize) == ("zoo:TinyNet", "N", "digits", "none")
    grid_file.write_text('profiles = ["zoo-one"]\n\n[[models]]\nmodel = "zoo:TinyNet"\nmetric = "C"\n')
    with pytest.raises(ConfigError, match="metric"):
        load_grid(grid_file, registry=get_registry())


def test_a_carded_zoo_model_links_to_its_zoo_name_on_the_leaderboard():
    """The card's model block names the zoo entry, and the index shows it beside the entry (escaped)."""
    import json

    from robrank.cards.identity import model_block
    from robrank.cards.site import entry, index_html

    class Loaded:  # what model_block reads of a loaded model from elsewhere
        metric = "N"
        model = torch.nn.Linear(2, 2)

    swiped = {"kind": "external", "spec": "zoo:my<net>", "weights": [], "normalize": None}
    block = model_block(Loaded(), swiped)
    assert block["zoo"] == "my<net>"
    stored = sorted((Path(__file__).resolve().parents[1] / "docs" / "leaderboard" / "entries").glob("*.json"))[0]
    card = json.loads(stored.read_text())
    card["model"] = {**card["model"], "zoo": block["zoo"]}
    row = entry(card, "x")
    assert row["zoo"] == "my<net>"
    html = index_html([row])
    assert "zoo:my&lt;net&gt;" in html and "zoo:my<net>" not in html
    plain = index_html([entry(json.loads(stored.read_text()), "x")])
    assert 'class="zoo"' not in plain
