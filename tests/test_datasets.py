"""The bundled dataset plugins against real MNIST/Fashion files and generated CUB/Cars/SOP/CIFAR trees."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import pickle
import tarfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from robrank.data.base import FileImageDataset, TensorImageDataset
from robrank.data.idx import read_idx, write_idx
from robrank.data.sources import IdxFile, IdxSource, IdxSplit
from robrank.errors import ConfigError, DataError
from robrank_plugins.datasets.cars_data import CarsSource
from robrank_plugins.datasets.cifar10_data import Cifar10Source
from robrank_plugins.datasets.cub_data import CubSource
from robrank_plugins.datasets.digits_data import DigitsSource
from robrank_plugins.datasets.mnist_data import FashionSource, MnistSource
from robrank_plugins.datasets.sop_data import SopSource

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEAD_URL = "http://127.0.0.1:9/"  # the discard port: nothing listens, the connection is refused at once


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test may find a user's real ~/.torch, /dev/shm or /usr/share copy."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(FashionSource, "system_dirs", ())
    for cls in (CubSource, CarsSource, SopSource):
        monkeypatch.setattr(cls, "system_dirs", ())


def link_idx(src: Path, dest: Path, names=IDX_NAMES) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dest / f"{name}.gz").symlink_to(src / f"{name}.gz")
    return dest


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST on the real files


@pytest.fixture(scope="module")
def mnist_splits(shared_data):
    source = MnistSource(shared_data)
    return source, source.load_split("train"), source.load_split("test")


def test_mnist_real_files_shapes_labels_and_class_counts(mnist_splits):
    source, train, test = mnist_splits
    assert source.locate().name == "mnist"
    assert isinstance(train, TensorImageDataset)
    assert train.data.shape == (60000, 1, 28, 28) and train.data.dtype == torch.uint8
    assert test.data.shape == (10000, 1, 28, 28)
    assert train.labels.dtype == torch.int64
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    # the official MNIST test distribution (class 8 has 974 images)
    assert torch.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    image, label = train[0]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28) and label == 5
    batch = test.images(torch.arange(256))
    assert batch.dtype == torch.float32 and float(batch.min()) == 0.0 and float(batch.max()) == 1.0
    assert torch.equal(batch[3], test[3][0])
    assert train.image_size == 28 and train.channels == 1 and train.num_classes == 10


def test_fashion_real_files(shared_data):
    source = FashionSource(shared_data)
    train = source.load_split("train")
    test = source.load_split("test", augment=True)  # no augmentation for 28x28 sets: same data
    assert train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert torch.equal(test.data, source.load_split("test").data)
    assert source.verify(source.locate()).startswith("60000 train / 10000 test")


def test_loading_never_hashes(shared_data, monkeypatch):
    def no_md5(*args, **kwargs):
        raise AssertionError("loading computed an md5")

    monkeypatch.setattr(hashlib, "md5", no_md5)
    assert len(MnistSource(shared_data).load_split("test")) == 10000


def test_raw_and_gz_variants_agree_and_raw_wins(shared_data, tmp_path, mnist_splits):
    _, _, test_gz = mnist_splits
    raw_dir = tmp_path / "root" / "mnist"
    raw_dir.mkdir(parents=True)
    for name in IDX_NAMES:
        (raw_dir / name).write_bytes(gzip.decompress((shared_data / "mnist" / f"{name}.gz").read_bytes()))
    (raw_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not even gzip")  # shadowed by the raw file
    source = MnistSource(tmp_path / "root")
    assert source.find(raw_dir, "t10k-labels-idx1-ubyte") == raw_dir / "t10k-labels-idx1-ubyte"
    test_raw = source.load_split("test")
    assert torch.equal(test_raw.data, test_gz.data) and torch.equal(test_raw.labels, test_gz.labels)
    source.verify(raw_dir)  # md5 of the raw content is the official one


@pytest.mark.parametrize(
    "layout",
    ["flat", "torchvision", "reference-home"],
)
def test_mnist_search_layouts(shared_data, tmp_path, layout):
    root = tmp_path / "root"
    root.mkdir()
    target = {"flat": root, "torchvision": root / "MNIST" / "raw", "reference-home": tmp_path / "home" / ".torch" / "MNIST" / "raw"}[layout]
    link_idx(shared_data / "mnist", target)
    source = MnistSource(root)
    assert source.locate() == target
    assert len(source.load_split("test")) == 10000


def test_fashion_torchvision_and_debian_layouts(shared_data, tmp_path, monkeypatch):
    link_idx(shared_data / "fashion-mnist", tmp_path / "tv" / "FashionMNIST" / "raw")
    assert FashionSource(tmp_path / "tv").locate() == tmp_path / "tv" / "FashionMNIST" / "raw"
    debian = link_idx(shared_data / "fashion-mnist", tmp_path / "usr-share" / "fashion-mnist")
    monkeypatch.setattr(FashionSource, "system_dirs", (str(debian),))
    source = FashionSource(None)
    assert source.search_paths()[-1] == debian
    assert source.locate() == debian
    assert MnistSource(None).search_paths() == [tmp_path / "home" / ".torch" / "MNIST" / "raw"]


def _root_with(shared_data: Path, tmp_path: Path, name: str, payload: bytes) -> MnistSource:
    """A data root whose ``mnist/`` holds the real files except ``name`` (written from ``payload``)."""
    directory = tmp_path / "bad" / "mnist"
    link_idx(shared_data / "mnist", directory, [n for n in IDX_NAMES if not name.startswith(n)])
    (directory / name).write_bytes(payload)
    return MnistSource(tmp_path / "bad")


def test_truncated_gz_names_the_file(shared_data, tmp_path):
    blob = (shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()
    source = _root_with(shared_data, tmp_path, "t10k-images-idx3-ubyte.gz", blob[: len(blob) // 2])
    with pytest.raises(DataError) as info:
        source.load_split("test")
    message = one_line(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "truncated" in message
    assert "robrank data download mnist" in message
    assert len(source.load_split("train")) == 60000  # the other split is fine


def test_truncated_raw_file_names_the_file(shared_data, tmp_path):
    content = gzip.decompress((shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    source = _root_with(shared_data, tmp_path, "t10k-labels-idx1-ubyte", content[:-100])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is truncated: header says 10000 \(10008 bytes\)"):
        source.load_split("test")


def test_bad_magic_and_wrong_count(shared_data, tmp_path):
    labels = np.zeros(10000, dtype=np.uint8)
    content = b"\x00\x00\x08\x03" + (10000).to_bytes(4, "big") + labels.tobytes()
    source = _root_with(shared_data, tmp_path, "t10k-labels-idx1-ubyte", content)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte has IDX magic 2051, expected 2049"):
        source.load_split("test")
    write_idx(tmp_path / "bad" / "mnist" / "t10k-labels-idx1-ubyte", labels[:9999])
    with pytest.raises(DataError, match="holds a 9999 array, expected 10000"):
        MnistSource(tmp_path / "bad").load_split("test")
    (tmp_path / "bad" / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"\x12\x34\x56\x78" + bytes(20))
    with pytest.raises(DataError, match="has IDX magic 305419896, expected 2049"):
        MnistSource(tmp_path / "bad").load_split("test")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is not an IDX file"):
        read_idx(tmp_path / "bad" / "mnist" / "t10k-labels-idx1-ubyte")


def test_wrong_content_loads_but_fails_verify(shared_data, tmp_path):
    content = bytearray(gzip.decompress((shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    content[8] = (content[8] + 1) % 10  # a valid file with one wrong label
    source = _root_with(shared_data, tmp_path, "t10k-labels-idx1-ubyte", bytes(content))
    assert len(source.load_split("test")) == 10000
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte has the wrong content") as info:
        source.verify(source.locate())
    one_line(info.value)


def test_label_out_of_range_is_rejected(shared_data, tmp_path):
    labels = np.full(10000, 10, dtype=np.uint8)
    source = _root_with(shared_data, tmp_path, "t10k-labels-idx1-ubyte", b"")
    write_idx(tmp_path / "bad" / "mnist" / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match="label 10, expected 0..9"):
        source.load_split("test")


def test_missing_and_incomplete_mnist(tmp_path, shared_data):
    with pytest.raises(DataError) as info:
        MnistSource(tmp_path / "empty").load_split("train")
    message = one_line(info.value)
    assert "dataset 'mnist' not found" in message
    assert f"Put the files in {tmp_path / 'empty' / 'mnist'}" in message
    assert "robrank data download mnist" in message
    link_idx(shared_data / "mnist", tmp_path / "part" / "mnist", IDX_NAMES[:3])
    with pytest.raises(DataError, match=r"incomplete in .*part/mnist: missing t10k-labels-idx1-ubyte\[.gz\]"):
        MnistSource(tmp_path / "part").locate()


def test_unknown_split():
    with pytest.raises(ConfigError, match="unknown split 'val'"):
        DigitsSource().load_split("val")


def test_idx_roundtrip_other_types(tmp_path):
    values = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    write_idx(tmp_path / "f.idx.gz", values)
    back = read_idx(tmp_path / "f.idx.gz", shape=(2, None, 4))
    assert back.dtype.kind == "f" and np.array_equal(back, values) and back.flags.writeable


# --------------------------------------------------------------------------------------------
# download (local HTTP server standing in for the mirrors)


class _Server:
    def __init__(self, directory: Path) -> None:
        handler = lambda *a, **k: _QuietHandler(*a, directory=str(directory), **k)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.requests: list[str] = []
        _QuietHandler.log = self.requests
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    log: list[str] = []

    def log_message(self, *args):
        _QuietHandler.log.append(self.path)


@pytest.fixture
def serve():
    servers = []

    def start(directory: Path) -> _Server:
        servers.append(_Server(directory))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_download_mnist_from_mirror_after_dead_one(shared_data, tmp_path, serve, monkeypatch):
    server = serve(shared_data / "mnist")
    monkeypatch.setattr(MnistSource, "mirrors", (DEAD_URL, server.url))
    source = MnistSource(tmp_path)
    dest = source.install_dir(tmp_path)
    assert dest == tmp_path / "mnist"
    assert source.download(dest, timeout=5) == dest
    for name in IDX_NAMES:  # the shared .gz were recompressed: accepted by their content md5
        assert (dest / f"{name}.gz").read_bytes() == (shared_data / "mnist" / f"{name}.gz").read_bytes()
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no temporary left behind
    source.verify(source.locate())
    served = len(server.requests)
    source.download(dest, timeout=5)  # everything verified already: nothing fetched
    assert len(server.requests) == served


def test_download_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(MnistSource, "mirrors", (DEAD_URL,))
    with pytest.raises(DataError) as info:
        MnistSource(tmp_path).download(tmp_path / "mnist", timeout=5)
    message = one_line(info.value)
    assert DEAD_URL in message and f"put it in {tmp_path / 'mnist'}" in message
    assert not list((tmp_path / "mnist").iterdir())


def test_download_rejects_bad_content_and_keeps_nothing(shared_data, tmp_path, serve, monkeypatch):
    site = tmp_path / "site"
    link_idx(shared_data / "mnist", site)
    blob = (shared_data / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes()
    (site / "train-labels-idx1-ubyte.gz").unlink()
    (site / "train-labels-idx1-ubyte.gz").write_bytes(blob[:-50])  # truncated in transit
    (site / "t10k-labels-idx1-ubyte.gz").unlink()
    (site / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(4)))
    monkeypatch.setattr(MnistSource, "mirrors", (serve(site).url,))
    with pytest.raises(DataError, match="not a complete gzip file") as info:
        MnistSource(tmp_path).download(tmp_path / "dl", timeout=5)
    one_line(info.value)
    assert not (tmp_path / "dl" / "train-labels-idx1-ubyte.gz").exists()
    (site / "train-labels-idx1-ubyte.gz").write_bytes(blob)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        MnistSource(tmp_path).download(tmp_path / "dl", timeout=5)


class TinyIdx(IdxSource):
    """A 3-image IDX dataset whose published gz md5 is the served file's: tests the either-md5 rule."""

    name = "tiny"
    root_subdirs = ("tiny",)
    home_subdirs = ("tiny",)
    image_size = 2
    num_classes = 3
    splits: dict = {}


def test_download_accepts_the_gz_md5_alone(tmp_path, serve, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    write_idx(site / "img.gz", np.arange(12, dtype=np.uint8).reshape(3, 2, 2))
    write_idx(site / "lab.gz", np.array([0, 1, 2], dtype=np.uint8))
    gz = {n: hashlib.md5((site / f"{n}.gz").read_bytes()).hexdigest() for n in ("img", "lab")}
    split = IdxSplit(IdxFile("img", "0" * 32, gz["img"]), IdxFile("lab", "0" * 32, gz["lab"]), 3)
    monkeypatch.setattr(TinyIdx, "splits", {"train": split, "test": split})
    monkeypatch.setattr(TinyIdx, "mirrors", (serve(site).url,))
    dest = TinyIdx(tmp_path).download(tmp_path / "tiny", timeout=5)
    assert TinyIdx(tmp_path).load_split("train").labels.tolist() == [0, 1, 2]
    with pytest.raises(DataError, match="wrong content"):  # the content md5 is (deliberately) not the published one
        TinyIdx(tmp_path).verify(dest)


# --------------------------------------------------------------------------------------------
# CUB / Cars / SOP on generated trees in their exact layouts


def _jpeg(path: Path, size=(40, 30), colour=(200, 30, 30), split_colour=None) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    if split_colour is not None:  # right half another colour: shows crops and flips
        image.paste(split_colour, (size[0] // 2, 0, size[0], size[1]))
    image.save(path, quality=95)


CUB_CLASSES = (1, 2, 100, 101, 150, 200)


def make_cub(root: Path) -> Path:
    base = root / "CUB_200_2011"
    images, labels, split = [], [], []
    image_id = 0
    for klass in CUB_CLASSES:
        for k in range(2):
            image_id += 1
            rel = f"{klass:03d}.Bird_{klass}/Bird_{klass}_{k}.jpg"
            _jpeg(base / "images" / rel, size=(50 + 10 * k, 40))
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {klass}")
            split.append(f"{image_id} {k}")
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (base / "train_test_split.txt").write_text("\n".join(split) + "\n")
    return base


def test_cub_zero_shot_split_and_labels(tmp_path):
    base = make_cub(tmp_path)
    source = CubSource(tmp_path)
    assert source.locate() == base
    train, test = source.load_split("train"), source.load_split("test", augment=False)
    assert isinstance(train, FileImageDataset)
    assert (len(train), len(test)) == (6, 6)
    assert sorted(set(train.labels.tolist())) == [0, 1, 99]
    assert sorted(set(test.labels.tolist())) == [100, 149, 199]  # not re-indexed
    assert train.paths[0] == base / "images" / "001.Bird_1" / "Bird_1_0.jpg"
    assert "6 train images / 3 classes, 6 test images / 3 classes" in source.verify(base)
    assert CubSource(base).locate() == base  # the data root may be the dataset folder itself


def test_cub_inconsistent_metadata(tmp_path):
    base = make_cub(tmp_path)
    (base / "image_class_labels.txt").write_text((base / "image_class_labels.txt").read_text().replace("1 1\n", "1 7\n", 1))
    with pytest.raises(DataError, match="image 1 is in folder 001.Bird_1 .* but has class 7"):
        CubSource(tmp_path).load_split("train")


def test_cub_verify_finds_missing_and_corrupt_images(tmp_path):
    base = make_cub(tmp_path)
    victim = base / "images" / "150.Bird_150" / "Bird_150_1.jpg"
    victim.write_bytes(b"GIF89a garbage")
    with pytest.raises(DataError, match="Bird_150_1.jpg is not a readable image"):
        CubSource(tmp_path).verify(base)
    victim.unlink()
    with pytest.raises(DataError, match="Bird_150_1.jpg is missing"):
        CubSource(tmp_path).verify(base)
    test = CubSource(tmp_path).load_split("test")
    with pytest.raises(DataError, match="is missing; re-extract"):
        test[int(torch.nonzero(test.labels == 149)[-1])]


def make_cars(root: Path, classes=(196, 1, 99, 98, 1, 150)) -> Path:
    import scipy.io

    base = root / "cars"
    fields = ["relpath", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annos = np.zeros(len(classes), dtype=[(f, "O") for f in fields])
    for i, klass in enumerate(classes):
        number = len(classes) - i  # paths in the file are not sorted
        rel = f"car_ims/{number:06d}.jpg"
        _jpeg(base / rel, size=(64, 48))
        annos[i] = (rel, 1, 2, 60, 40, klass, i % 2)
    scipy.io.savemat(base / "cars_annos.mat", {"annotations": annos})
    return base


def test_cars_zero_shot_split_sorted_by_path(tmp_path):
    base = make_cars(tmp_path)
    source = CarsSource(tmp_path)
    train, test = source.load_split("train"), source.load_split("test")
    # sorted by path: 000001 (class 150) ... 000006 (class 196)
    assert [p.name for p in train.paths] == ["000002.jpg", "000003.jpg", "000005.jpg"]
    assert train.labels.tolist() == [1, 98, 1]  # raw 1-based class ids
    assert [p.name for p in test.paths] == ["000001.jpg", "000004.jpg", "000006.jpg"]
    assert test.labels.tolist() == [150, 99, 196]
    assert train.paths[0] == base / "car_ims" / "000002.jpg"
    assert "(the standard split has 8054 / 8131 images)" in source.verify(base)


def test_cars_single_annotation_and_bad_mat(tmp_path):
    base = make_cars(tmp_path, classes=(5,))
    assert CarsSource(tmp_path).load_split("train").labels.tolist() == [5]
    (base / "cars_annos.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    with pytest.raises(DataError, match="cars_annos.mat is not a readable MATLAB file") as info:
        CarsSource(tmp_path).load_split("test")
    one_line(info.value)


def make_sop(root: Path) -> Path:
    base = root / "Stanford_Online_Products"
    header = "image_id class_id super_class_id path"
    train = [(1, 1, 1, "bicycle_final/111_0.JPG"), (2, 1, 1, "bicycle_final/111_1.JPG"), (3, 2, 1, "bicycle_final/112_0.JPG")]
    test = [(4, 11319, 2, "chair_final/9_0.JPG"), (5, 11320, 2, "chair_final/10_0.JPG"), (6, 11320, 2, "chair_final/10_1.JPG")]
    for name, rows in (("Ebay_train.txt", train), ("Ebay_test.txt", test)):
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(header + "\n" + "\n".join(" ".join(map(str, r)) for r in rows) + "\n")
        for row in rows:
            _jpeg(base / row[3], size=(30, 30))
    return base


def test_sop_official_split(tmp_path):
    base = make_sop(tmp_path)
    source = SopSource(tmp_path)
    train, test = source.load_split("train"), source.load_split("test")
    assert train.labels.tolist() == [1, 1, 2] and test.labels.tolist() == [11319, 11320, 11320]
    assert test.paths[1] == base / "chair_final" / "10_0.JPG"
    source.verify(base)
    (base / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n7 x 2 chair_final/9_0.JPG\n")
    with pytest.raises(DataError, match="Ebay_test.txt has class_id 'x'"):
        SopSource(tmp_path).load_split("test")


def test_reference_transforms_on_a_split_image(tmp_path):
    base = make_sop(tmp_path)
    _jpeg(base / "bicycle_final" / "111_0.JPG", size=(300, 200), colour=(255, 0, 0), split_colour=(0, 0, 255))
    source = SopSource(tmp_path)
    test = source.load_split("test")
    image, label = test[0]
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32 and label == 11319
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    plain = source.load_split("train")
    first, again = plain[0][0], plain[0][0]
    assert torch.equal(first, again)  # test transform: deterministic
    # Resize((256,256)) -> CenterCrop(224): red left of column 112, blue right of it
    assert float(first[0, :, :100].mean()) > 0.95 and float(first[2, :, :100].mean()) < 0.05
    assert float(first[2, :, 124:].mean()) > 0.95 and float(first[0, :, 124:].mean()) < 0.05
    torch.manual_seed(0)
    augmented = source.load_split("train", augment=True)
    lefts = set()
    for _ in range(40):
        x = augmented[0][0]
        assert x.shape == (3, 224, 224)
        lefts.add("red" if float(x[0, :, :20].mean()) > 0.9 else "blue")
    assert lefts == {"red", "blue"}  # RandomHorizontalFlip(0.5) shows both sides


@pytest.mark.parametrize("cls, how", [(CubSource, "CUB_200_2011.tgz"), (CarsSource, "car_ims.tgz"), (SopSource, "Stanford_Online_Products.zip")])
def test_missing_image_sets_say_where_to_get_and_put_them(tmp_path, cls, how):
    source = cls(tmp_path)
    with pytest.raises(DataError) as info:
        source.load_split("train")
    message = one_line(info.value)
    assert how in message and f"Put the files in {tmp_path / cls.dirname}" in message
    with pytest.raises(DataError, match="has no automatic download") as info:
        source.download(source.install_dir(tmp_path))
    one_line(info.value)


# --------------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"generated",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def make_cifar(root: Path, n: int = 6) -> Path:
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        (base / name).write_bytes(pickle.dumps(_cifar_batch(n, i), protocol=2))
    (base / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
    return base


def test_cifar10_loads_generated_batches(tmp_path):
    base = make_cifar(tmp_path)
    source = Cifar10Source(tmp_path)
    train, test = source.load_split("train"), source.load_split("test")
    assert train.data.shape == (30, 3, 32, 32) and test.data.shape == (6, 3, 32, 32)
    batch = _cifar_batch(6, 5)
    assert test.labels.tolist() == batch[b"labels"]
    assert torch.equal(test.data[2], torch.from_numpy(batch[b"data"][2].reshape(3, 32, 32)))
    augmented = source.load_split("train", augment=True)
    assert augmented[0][0].shape == (3, 32, 32) and augmented.images(torch.arange(4)).shape == (4, 3, 32, 32)
    with pytest.raises(DataError, match="has 30 images, expected 50000"):
        source.verify(base)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_code_in_pickles(tmp_path):
    base = make_cifar(tmp_path)
    marker = tmp_path / "pwned"
    (base / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(marker)}, protocol=2))
    with pytest.raises(DataError, match="refusing to load posix.system|refusing to load os.system") as info:
        Cifar10Source(tmp_path).load_split("test")
    one_line(info.value)
    assert not marker.exists()
    (base / "test_batch").write_bytes(pickle.dumps(_cifar_batch(6, 5), protocol=2)[:-40])
    with pytest.raises(DataError, match="test_batch is truncated or corrupt"):
        Cifar10Source(tmp_path).load_split("test")


def test_cifar10_download_extracts_a_checked_archive(tmp_path, serve, monkeypatch):
    import robrank_plugins.datasets.cifar10_data as cifar

    make_cifar(tmp_path / "src")
    site = tmp_path / "site"
    site.mkdir()
    with tarfile.open(site / "cifar.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    server = serve(site)
    monkeypatch.setattr(cifar, "URL", server.url + "cifar.tar.gz")
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", "0" * 32)
    with pytest.raises(DataError, match="checksum mismatch") as info:
        Cifar10Source(tmp_path / "data").download(tmp_path / "data" / "cifar-10-batches-py", timeout=5)
    one_line(info.value)
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", hashlib.md5((site / "cifar.tar.gz").read_bytes()).hexdigest())
    source = Cifar10Source(tmp_path / "data")
    dest = source.download(source.install_dir(tmp_path / "data"), timeout=5)
    assert dest == tmp_path / "data" / "cifar-10-batches-py"
    assert len(source.load_split("test")) == 6
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar-10-batches-py"]  # nothing else left


def test_cifar10_archive_escaping_its_folder_is_refused(tmp_path, serve, monkeypatch):
    import robrank_plugins.datasets.cifar10_data as cifar

    site = tmp_path / "site"
    site.mkdir()
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(site / "cifar.tar.gz", "w:gz") as tar:
        tar.add(evil, arcname="../outside.txt")
    monkeypatch.setattr(cifar, "URL", serve(site).url + "cifar.tar.gz")
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", hashlib.md5((site / "cifar.tar.gz").read_bytes()).hexdigest())
    with pytest.raises(DataError, match="outside cifar-10-batches-py/"):
        Cifar10Source(tmp_path / "data").download(tmp_path / "data" / "cifar-10-batches-py", timeout=5)
    assert not (tmp_path / "outside.txt").exists()


def test_random_crop_flip_is_a_padded_crop():
    from robrank.data.transforms import random_crop_flip

    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(30):
        out = random_crop_flip(images, padding=2, generator=generator)
        assert out.shape == images.shape
        for b in range(2):
            padded = torch.nn.functional.pad(images[b], (2, 2, 2, 2))
            match = [
                (dy, dx, f)
                for dy in range(5)
                for dx in range(5)
                for f in (False, True)
                if torch.equal(out[b], (lambda c: c.flip(-1) if f else c)(padded[:, dy : dy + 6, dx : dx + 6]))
            ]
            assert match, "output is not a crop of the zero-padded image"
            seen.add(match[0])
    assert len(seen) > 10 and {m[2] for m in seen} == {False, True}


# --------------------------------------------------------------------------------------------
# digits (the embedded default)


def test_digits_split_and_pixels():
    from sklearn.datasets import load_digits

    source = DigitsSource(None)
    assert source.locate().is_dir()
    train, test = source.load_split("train"), source.load_split("test")
    assert (len(train), len(test)) == (1433, 364)
    assert train.data.shape[1:] == (1, 28, 28) and train.data.dtype == torch.uint8
    per_class = Counter(load_digits().target.tolist())
    assert torch.bincount(test.labels).tolist() == [(per_class[c] + 4) // 5 for c in range(10)]
    # deterministic, disjoint, complete: the test images are exactly items 0, 5, 10 ... of each class
    again = DigitsSource(None).load_split("test")
    assert torch.equal(again.data, test.data)
    small = torch.from_numpy(load_digits().images).float() / 16
    zeros_class = torch.nonzero(torch.from_numpy(load_digits().target) == 0).flatten()
    big = test.data[0, 0].float() / 255  # the first 0 of the dataset
    assert abs(float(big.mean()) - float(small[zeros_class[0]].mean())) < 0.03  # bilinear keeps the mean
    assert int(train.data.max()) == 255 and int(train.data.min()) == 0
    assert "1433 train / 364 test" in source.verify(source.locate())


def test_streamed_content_md5_handles_members_and_truncation():
    from robrank.data.download import _GunzipHasher

    payload = bytes(range(256)) * 4000
    stream = gzip.compress(payload[:500_000]) + gzip.compress(payload[500_000:])  # two gzip members
    for chunk_size in (7, 4096, len(stream)):
        hasher = _GunzipHasher()
        for start in range(0, len(stream), chunk_size):
            hasher.update(stream[start : start + chunk_size])
        assert hasher.hexdigest() == hashlib.md5(payload).hexdigest()
    cut = _GunzipHasher()
    cut.update(stream[:-10])
    assert cut.hexdigest() is None
    junk = _GunzipHasher()
    junk.update(b"<html>not found</html>")
    assert junk.hexdigest() is None
