"""``robrank data`` through the real CLI group: output, exit codes and one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from robrank.cli import cli
from robrank_plugins.datasets.cars_data import CarsSource
from robrank_plugins.datasets.cub_data import CubSource
from robrank_plugins.datasets.mnist_data import FashionSource, MnistSource
from robrank_plugins.datasets.sop_data import SopSource

from test_datasets import DEAD_URL, IDX_NAMES, link_idx, make_cub
from robrank.plugins import get_registry


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(FashionSource, "system_dirs", ())
    for cls in (CubSource, CarsSource, SopSource):
        monkeypatch.setattr(cls, "system_dirs", ())


def run(*args: str):
    return CliRunner().invoke(cli, ["data", *args])


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_list_shows_presence_and_search_paths(shared_data):
    result = run("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    mnist = next(line for line in lines if line.startswith("mnist "))
    assert "present" in mnist and str(shared_data / "mnist") in mnist
    cub = next(line for line in lines if line.startswith("cub "))
    assert "missing" in cub
    assert any("CUB_200_2011.tgz" in line for line in lines)
    assert any(line.strip().startswith("looked in:") and str(shared_data / "CUB_200_2011") in line for line in lines)


def test_list_json_and_verify(shared_data, tmp_path):
    make_cub(tmp_path)
    result = run("list", "--json", "--verify", "--data-root", str(tmp_path))
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)["datasets"]}
    assert {"mnist", "fashion", "cub", "cars", "sop", "cifar10", "digits"} <= set(rows)
    assert rows["cub"]["status"] == "present" and rows["cub"]["verified"] is None  # big sets: `check` only
    assert "robrank data check cub" in rows["cub"]["detail"]
    assert rows["digits"]["verified"] is True
    assert rows["mnist"]["status"] == "missing" and str(tmp_path / "mnist") in rows["mnist"]["searched"]
    shared = {r["name"]: r for r in json.loads(run("list", "--json", "--verify").output)["datasets"]}
    assert shared["mnist"]["verified"] is True and shared["fashion"]["verified"] is True


def test_list_verify_reports_a_corrupt_set(shared_data, tmp_path):
    directory = link_idx(shared_data / "mnist", tmp_path / "mnist", IDX_NAMES[:3])
    (directory / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01")
    result = run("list", "--verify", "--data-root", str(tmp_path))
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if line.startswith("mnist "))
    assert "corrupt" in line


def test_check_ok_is_one_line(shared_data):
    result = run("check", "mnist")
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"mnist: ok at {shared_data / 'mnist'}: 60000 train / 10000 test")


def test_check_generated_cub(tmp_path):
    make_cub(tmp_path)
    result = run("check", "CUB", "--data-root", str(tmp_path))  # names are case-forgiving
    assert result.exit_code == 0, result.output
    assert "cub: ok" in result.output and "6 train images / 3 classes" in result.output


def test_check_problems_exit_2(shared_data, tmp_path):
    assert_one_line_error(run("check", "nope"), "unknown dataset 'nope'; registered:", "mnist", "digits")
    assert_one_line_error(run("check", "cub", "--data-root", str(tmp_path)), "dataset 'cub' not found", "CUB_200_2011.tgz")
    directory = link_idx(shared_data / "mnist", tmp_path / "mnist", IDX_NAMES[1:])
    blob = (shared_data / "mnist" / "train-images-idx3-ubyte.gz").read_bytes()
    (directory / "train-images-idx3-ubyte.gz").write_bytes(blob[:1000])
    assert_one_line_error(run("check", "mnist", "--data-root", str(tmp_path)), "train-images-idx3-ubyte.gz is truncated")


def test_download_errors_are_one_line(tmp_path, monkeypatch):
    assert_one_line_error(run("download", "cub", "--dest", str(tmp_path)), "no automatic download", str(tmp_path / "CUB_200_2011"))
    monkeypatch.setattr(MnistSource, "mirrors", (DEAD_URL,))
    assert_one_line_error(
        run("download", "mnist", "--dest", str(tmp_path), "--timeout", "5"),
        "could not download mnist file",
        DEAD_URL,
        str(tmp_path / "mnist"),
    )


def test_download_mnist_through_the_cli(shared_data, tmp_path, monkeypatch):
    from test_datasets import _Server

    server = _Server(shared_data / "mnist")
    try:
        monkeypatch.setattr(MnistSource, "mirrors", (server.url,))
        result = run("download", "mnist", "--dest", str(tmp_path))
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    assert f"mnist: ready in {tmp_path / 'mnist'}" in result.output
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(f"{n}.gz" for n in IDX_NAMES)
    assert run("check", "mnist", "--data-root", str(tmp_path)).exit_code == 0


def test_data_group_alone_converts_errors():
    from robrank.cli.data import data_group

    result = CliRunner().invoke(data_group, ["check", "nope"])
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.output and "Traceback" not in result.output


def test_loading_front_door(shared_data):
    from robrank.data.loading import dataset_record, get_source, load_split
    from robrank.errors import ConfigError, UnknownNameError

    record = dataset_record("cub", registry=get_registry())
    assert (record.image_size, record.channels, record.num_test_classes, record.profile) == (224, 3, 100, "rob224")
    assert dataset_record("sop", registry=get_registry()).num_test_classes == 11316 and dataset_record("cars", registry=get_registry()).num_test_classes == 98
    assert dataset_record("cifar10", registry=get_registry()).task == "classification" and dataset_record("cifar10", registry=get_registry()).kinds == ("classification",)
    assert dataset_record("digits", registry=get_registry()).profile == "rob28"
    assert get_source("fashion", registry=get_registry()).locate() == shared_data / "fashion-mnist"  # $ROBRANK_DATA
    assert len(load_split("mnist", "test", data_root=shared_data, registry=get_registry())) == 10000
    with pytest.raises(UnknownNameError, match="registered: cars, cifar10, cub, digits, fashion, mnist, sop"):
        get_source("imagenet", registry=get_registry())
    with pytest.raises(ConfigError, match="unknown split"):
        load_split("digits", "validation", registry=get_registry())
    assert isinstance(Path(get_source("digits", registry=get_registry()).locate()), Path)
