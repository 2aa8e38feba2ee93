"""robrank-mydataset: the folder layouts, the two image pipelines, and a run on a generated tree.

The fixtures ``register_plugin``, ``robrank_cli`` and ``tiny_run_factory`` come from
robrank's pytest plugin (``robrank.testing``), installed with robrank.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import robrank_mydataset
from robrank.plugin_api import DataError, ProfileRecord, get_registry, hookimpl
from robrank_mydataset import ImageFolder28Source, ImageFolderSource, scan
from robrank_mydataset.demo import write_demo_tree

PROVENANCE = {"distribution": "robrank-mydataset", "version": robrank_mydataset.__version__}


def solid(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)
    return path


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory) -> Path:
    return write_demo_tree(tmp_path_factory.mktemp("demo") / "tree", classes=6, per_class=8, size=48)


# ---------------------------------------------------------------------------------- layouts


def test_single_tree_is_split_by_sorted_class_name(tmp_path):
    # created out of order: the split must not depend on the file system's listing order
    for name in ("delta", "alpha", "echo", "charlie", "bravo"):
        for i in range(2):
            solid(tmp_path / name / f"{i}.png", (10, 20, 30))
    tree = scan(tmp_path)
    assert tree.layout == "single"
    assert tree.classes == ("alpha", "bravo", "charlie", "delta", "echo")
    # 5 classes: the first 3 (half, rounded up) train, the last 2 test; labels index the sorted names
    assert sorted(set(tree.train.labels)) == [0, 1, 2]
    assert sorted(set(tree.test.labels)) == [3, 4]
    assert [p.parent.name for p in tree.test.paths] == ["delta", "delta", "echo", "echo"]


def test_split_layout_keeps_labels_across_splits(tmp_path):
    for split, names in (("train", ("cat", "dog")), ("test", ("dog", "emu", "cat"))):
        for name in names:
            solid(tmp_path / split / name / "a.jpg", (0, 0, 0))
    solid(tmp_path / "test" / "emu" / "b.JPEG", (0, 0, 0))  # suffixes are case-insensitive
    (tmp_path / "test" / "emu" / "notes.txt").write_text("not an image")
    (tmp_path / "test" / "emu" / ".hidden.jpg").write_bytes(b"")  # hidden files are ignored
    tree = scan(tmp_path)
    assert tree.layout == "split"
    assert tree.classes == ("cat", "dog", "emu")
    assert tree.train.labels == (0, 1)
    assert sorted(tree.test.labels) == [0, 1, 2, 2]
    assert tree.test.num_classes == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: solid(root / "only" / "a.png", (0, 0, 0)), "at least 4 class folders"),
        (lambda root: [solid(root / c / "a.png", (0, 0, 0)) for c in "abc"] + [(root / "d").mkdir()], "holds no images"),
        (lambda root: solid(root / "train" / "a" / "x.png", (0, 0, 0)), "no test/ folder"),
        (lambda root: None, "holds no class folders"),
    ],
)
def test_unusable_trees_are_one_line_data_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message) as err:
        scan(tmp_path)
    assert "\n" not in str(err.value)


def test_missing_data_root_says_how_to_pass_one(tmp_path):
    with pytest.raises(DataError, match="--data-root"):
        ImageFolderSource(None).locate()
    with pytest.raises(DataError, match="found no image folders"):
        ImageFolderSource(tmp_path).locate()


def test_tree_is_also_found_under_root_imagefolder(tmp_path):
    write_demo_tree(tmp_path / "imagefolder", classes=4, per_class=2, size=16)
    assert ImageFolderSource(tmp_path).locate() == tmp_path / "imagefolder"


# ---------------------------------------------------------------------------------- pixels


def test_224_pipeline_is_the_reference_transform(tmp_path):
    for c, rgb in enumerate(((255, 0, 128), (0, 255, 0), (9, 9, 9), (1, 2, 3))):
        solid(tmp_path / f"c{c}" / "a.png", rgb, size=(300, 200))
    source = ImageFolderSource(tmp_path)
    test = source.load_split("test")
    image, label = test[0]
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32
    # a uniform image stays uniform through Resize(256) -> CenterCrop(224) -> ToTensor
    assert label == 2 and torch.allclose(image, torch.full_like(image, 9 / 255))
    train = source.load_split("train", augment=True)
    first, _ = train[0]
    assert first.shape == (3, 224, 224)
    assert torch.allclose(first[0], torch.ones(224, 224)) and torch.allclose(first[2], torch.full((224, 224), 128 / 255))


def test_28_pipeline_is_greyscale_uint8_in_memory(tmp_path):
    # PIL's L = R*299/1000 + G*587/1000 + B*114/1000, rounded: red 76, green 150, blue 29, grey 200
    colours = {"a_red": (255, 0, 0), "b_green": (0, 255, 0), "c_blue": (0, 0, 255), "d_grey": (200, 200, 200)}
    for name, rgb in colours.items():
        solid(tmp_path / name / "1.png", rgb)
    source = ImageFolder28Source(tmp_path)
    train, test = source.load_split("train"), source.load_split("test")
    assert train.data.shape == (2, 1, 28, 28) and train.data.dtype == torch.uint8
    assert train.data[0].unique().tolist() == [76] and train.data[1].unique().tolist() == [150]
    assert test.data[0].unique().tolist() == [29] and test.data[1].unique().tolist() == [200]
    batch = test.images(torch.tensor([1, 0]))
    assert batch.shape == (2, 1, 28, 28) and float(batch.max()) == pytest.approx(200 / 255)
    assert source.load_split("test") is test  # decoded once


def test_verify_reports_counts_and_names_a_corrupt_file(demo_tree, tmp_path):
    line = ImageFolderSource(demo_tree).verify(demo_tree)
    assert line == "single layout: 24 train images / 3 classes, 24 test images / 3 classes, all readable"
    broken = write_demo_tree(tmp_path / "broken", classes=4, per_class=2, size=16)
    bad = broken / "class_03" / "001.png"
    bad.write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataError, match="001.png"):
        ImageFolderSource(broken).verify(broken)


# ---------------------------------------------------------------------------------- robrank


def test_records_count_test_classes_from_the_tree(register_plugin, demo_tree):
    from robrank.plugin_api import dataset_record, load_split

    with register_plugin(robrank_mydataset, distribution="robrank-mydataset", version=robrank_mydataset.__version__) as host:
        big, small = (host.registry.component("datasets", n) for n in ("imagefolder", "imagefolder28"))
        assert (big.record.image_size, big.record.channels, big.record.profile) == (224, 3, "rob224")
        assert (small.record.image_size, small.record.channels, small.record.profile) == (28, 1, "rob28")
        assert big.provider.distribution == "robrank-mydataset"
        test = load_split("imagefolder28", "test", demo_tree, registry=get_registry())
        assert dataset_record("imagefolder28", registry=get_registry()).test_classes(test) == 3


def test_list_shows_the_datasets(register_plugin, robrank_cli):
    with register_plugin(robrank_mydataset, distribution="robrank-mydataset", version=robrank_mydataset.__version__):
        result = robrank_cli("list", "datasets", "--json")
    assert result.exit_code == 0, result.output
    mine = {d["name"]: d for d in json.loads(result.stdout)["components"]["datasets"] if d["provider"]["distribution"] == "robrank-mydataset"}
    assert set(mine) == {"imagefolder", "imagefolder28"}
    assert mine["imagefolder"]["provider"]["version"] == PROVENANCE["version"]


def test_a_model_trains_and_evaluates_on_a_generated_tree(register_plugin, tiny_run_factory, robrank_cli, demo_tree):
    with register_plugin(robrank_mydataset, distribution="robrank-mydataset", version=robrank_mydataset.__version__):
        run = tiny_run_factory(dataset="imagefolder28", data_root=str(demo_tree), backbone="lenet", steps=6, batch_size=8)
        config = json.loads((run / "config.json").read_text())["config"]
        assert config["dataset"] == "imagefolder28" and config["data_root"] == str(demo_tree)
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        assert 0.0 <= metrics[-1]["R@1"] <= 1.0 and 0.0 <= metrics[-1]["NMI"] <= 1.0
        result = robrank_cli("eval", str(run), "--data-root", str(demo_tree), "--json")
    assert result.exit_code == 0, result.output


class TinyProfile:
    """One FGSM-sized candidate attack at 224's budget: a swipe that costs seconds on a CPU."""

    @staticmethod
    @hookimpl
    def register_profiles(register):
        register(ProfileRecord(name="tiny224", factory=lambda: ["CA:pm=+:W=1:eps=0.03137:alpha=0.011764:pgditer=1"], summary="one FGSM CA+", image_size=224))


def test_robrank_run_on_a_generated_224_tree(register_plugin, robrank_cli, tmp_path):
    tree = write_demo_tree(tmp_path / "photos", classes=4, per_class=4, size=40, fmt="jpg")
    run_dir = tmp_path / "run"
    with register_plugin(robrank_mydataset, TinyProfile(), distribution="robrank-mydataset", version=robrank_mydataset.__version__):
        result = robrank_cli(
            "run", "--dataset", "imagefolder", "--data-root", str(tree), "--pretrained", "none",
            "--embedding-dim", "16", "--epochs", "1", "--max-steps", "2", "--batch-size", "2",
            "--val-batch-size", "8", "--num-workers", "0", "--device", "cpu", "--run-dir", str(run_dir),
            "-p", "tiny224", "-m", "1", "--swipe-batch-size", "2", "--no-progress",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["dataset"] == "imagefolder" and saved["config"]["backbone"] == "resnet18"
    swipe = json.loads((run_dir / "swipe-tiny224.json").read_text())
    assert swipe["dataset"] == "imagefolder" and swipe["queries"] == 8  # the 2 test classes x 4 images
    [attack] = swipe["attacks"]
    assert attack["count"] == 2 and 0.0 <= attack["adv"]["prank"] <= 100.0
    assert (run_dir / "report.txt").is_file()
