"""Downloads that either produce a verified file or fail with one line saying what to do.

A download streams to a temporary file next to its target while hashing, is checked, and
only then replaces the target (:func:`robrank.io.atomic_open`), so an interrupted or
corrupted transfer never leaves a file that looks like a dataset. Mirrors are tried in order.

Checksums: mirrors recompress gzip files, so a ``.gz`` whose own md5 differs from the
published one may still hold the right content. :func:`download_file` therefore hashes both
the bytes received and, on request, the gunzipped stream, and lets the caller accept either.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .. import progress as progress_output
from ..io import atomic_open

DEFAULT_TIMEOUT = 30.0
CHUNK = 1 << 20
USER_AGENT = "robrank-dataset-download/1 (+https://github.com/cdluminate/robrank)"


@dataclass(frozen=True)
class Digests:
    """What was received: md5 of the bytes, and of the gunzipped content when asked for."""

    md5: str
    content_md5: str | None = None


class _GunzipHasher:
    """md5 of a (possibly multi-member) gzip stream's content, fed chunk by chunk.

    The digest is None when the stream is not gzip or ends inside a member (truncated).
    """

    def __init__(self) -> None:
        self.hash = hashlib.md5()
        self.inflater = zlib.decompressobj(31)
        self.complete = False  # the stream so far ends exactly at the end of a member
        self.broken = False

    def update(self, chunk: bytes) -> None:
        if self.broken:
            return
        try:
            while chunk:
                self.hash.update(self.inflater.decompress(chunk))
                if not self.inflater.eof:
                    self.complete = False
                    return
                chunk = self.inflater.unused_data  # the next member starts here, if any
                self.inflater = zlib.decompressobj(31)
                self.complete = True
        except zlib.error:
            self.broken = True

    def hexdigest(self) -> str | None:
        return self.hash.hexdigest() if self.complete and not self.broken else None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def fetch(
    url: str,
    target: Path,
    *,
    accept: Callable[[Digests], str | None],
    gunzip_md5: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = False,
) -> Digests:
    """Stream ``url`` into ``target`` atomically; ``accept`` returns None or why it is rejected.

    Raises OSError-family errors for transport problems and ``ValueError`` for a rejected
    download; the target is untouched in both cases.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    raw = hashlib.md5()
    content = _GunzipHasher() if gunzip_md5 else None
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.headers.get("Content-Length")

        bar = progress_output.bar(progress, total=int(total) if total else None, unit="B", unit_scale=True, desc=target.name, leave=False)
        try:
            with atomic_open(target, "wb") as handle:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    handle.write(chunk)
                    raw.update(chunk)
                    if content is not None:
                        content.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                digests = Digests(raw.hexdigest(), content.hexdigest() if content is not None else None)
                problem = accept(digests)
                if problem:
                    raise ValueError(problem)  # leaves atomic_open before the replace: target untouched
        finally:
            if bar is not None:
                bar.close()
    return digests


def download_file(
    urls: Sequence[str],
    target: Path,
    *,
    accept: Callable[[Digests], str | None],
    what: str,
    gunzip_md5: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = False,
) -> str:
    """Fetch ``target`` from the first mirror that serves an acceptable file; returns that URL.

    When every mirror fails, a one-line DataError lists each mirror's reason and where the
    user can put the file by hand.
    """
    ensure_writable(target.parent)
    reasons: list[str] = []
    for url in urls:
        try:
            fetch(url, target, accept=accept, gunzip_md5=gunzip_md5, timeout=timeout, progress=progress)
            return url
        except ValueError as exc:
            reasons.append(f"{url}: {exc}")
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, short reads
            reasons.append(f"{url}: {_one_line(exc)}")
    raise DataError(
        f"could not download {what} ({'; '.join(reasons)}); you can fetch {target.name} yourself "
        f"and put it in {target.parent}"
    )


def ensure_writable(directory: Path) -> None:
    """Create ``directory`` or fail with a one-line DataError before any byte is fetched."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {directory} ({exc.strerror or exc}); pass --dest DIR to download elsewhere") from None
    if not os.access(directory, os.W_OK):
        raise DataError(f"cannot write to {directory}; pass --dest DIR to download elsewhere")


def md5_file(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extract_tar(archive: Path, into: Path, top: str) -> Path:
    """Extract ``archive`` whose members all live under ``top/`` and move ``top`` into ``into``.

    Extraction goes to a temporary sibling directory and is renamed into place at the end,
    so ``into/top`` is either complete or absent. Members outside ``top/``, links and device
    files are refused (tarfile's ``data`` filter), so an archive cannot write elsewhere.
    """
    into.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=into))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            outside = [m.name for m in members if m.name != top and not m.name.startswith(top + "/")]
            if outside:
                raise DataError(f"archive {archive} holds {outside[0]!r} outside {top}/; it is not the expected archive")
            try:
                tar.extractall(staging, members=members, filter="data")
            except tarfile.TarError as exc:
                raise DataError(f"archive {archive} is corrupt ({exc})") from None
        final = into / top
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging / top, final)
        return final
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"archive {archive} is corrupt or truncated ({_one_line(exc)})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
