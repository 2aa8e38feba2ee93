"""``robrank data``: where each dataset is looked for, whether it is there and intact, and downloads.

``list`` is cheap (file existence only) unless ``--verify``; ``--verify`` checks the
in-memory datasets' content but leaves the big image trees (CUB, Cars, SOP: every image
is opened) to ``check NAME``. ``check`` prints one line and exits 2 on any problem.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
import inspect
import sys

import click

from ..errors import DataError, RobrankError
from ..plugins import Registry
from . import UserError
from .options import FiniteFloat
from ..plugins import get_registry

DATA_ROOT_HELP = "Directory with the datasets [default: $ROBRANK_DATA]."


class _DataGroup(click.Group):
    """Turns RobrankErrors into one-line exit-2 errors even when the group is invoked alone."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RobrankError as exc:
            raise UserError(" ".join(str(exc).split())) from exc


@click.group("data", cls=_DataGroup)
def data_group() -> None:
    """List, check and download datasets."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _status(name: str, data_root: str | None, verify: bool, registry: Registry) -> dict[str, Any]:
    """What ``list`` shows for one dataset; a misbehaving plugin shows as an error, not a crash."""
    from ..data.loading import get_source  # lazy: keeps robrank --help torch-free

    row: dict[str, Any] = {"name": name, "status": "missing", "location": None, "searched": [], "verified": None}
    try:
        source = get_source(name, data_root, registry=registry)
        row["searched"] = [str(p) for p in source.search_paths()]
        found = next((p for p in source.search_paths() if source.is_present(p)), None)
        if found is None:
            row["detail"] = source.how_to_get()
            return row
        row["status"], row["location"] = "present", str(found)
        if verify and source.verify_is_slow:
            row["detail"] = f"not verified here (reads every image): robrank data check {name}"
        elif verify:
            try:
                summary = source.verify(found)
                row["verified"], row["detail"] = True, summary or "ok"
            except RobrankError as exc:
                row["status"], row["verified"], row["detail"] = "corrupt", False, _one_line(exc)
    except RobrankError as exc:
        row["status"], row["detail"] = "error", _one_line(exc)
    except Exception as exc:  # third-party source code: report, keep listing the others
        if os.environ.get("ROBRANK_DEBUG"):
            raise
        row["status"], row["detail"] = "error", f"{type(exc).__name__}: {_one_line(exc)}"
    return row


@data_group.command("list")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help=DATA_ROOT_HELP)
@click.option("--verify", is_flag=True, help="Also check the content of present datasets (checksums).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_datasets(data_root: str | None, verify: bool, as_json: bool) -> None:
    """Every registered dataset: where it is looked for, present or missing (and intact, with --verify)."""
    registry = get_registry()
    rows = [_status(name, data_root, verify, registry) for name in registry.names("datasets")]
    if as_json:
        click.echo(json.dumps({"datasets": rows}, indent=2))
        return
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        state = r["status"] + (" (verified)" if r["verified"] else "")
        colour = {"present": "green", "missing": "yellow"}.get(r["status"], "red")
        head = f"{r['name']:<{width}}  " + click.style(f"{state:<18}", fg=colour)
        click.echo(head + (f"  {r['location']}" if r["location"] else ""))
        if r.get("detail"):
            click.echo(f"{'':<{width}}  {r['detail']}")
        if r["searched"]:
            click.echo(f"{'':<{width}}  looked in: {', '.join(r['searched'])}")


@data_group.command("check")
@click.argument("name")
@click.option("--data-root", type=click.Path(file_okay=False), default=None, help=DATA_ROOT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (nothing else on stdout).")
def check_dataset(name: str, data_root: str | None, as_json: bool) -> None:
    """Verify dataset NAME's files (headers, sizes, checksums or every image); exit 2 on problems."""
    from ..data.loading import get_source  # lazy: keeps robrank --help torch-free

    source = get_source(name, data_root, registry=get_registry())
    path = source.locate()
    summary = source.verify(path)
    if as_json:
        click.echo(json.dumps({"dataset": source.name, "path": str(path), "ok": True, "summary": summary}, indent=2))
        return
    click.echo(f"{source.name}: ok at {path}" + (f": {summary}" if summary else ""))


@data_group.command("download")
@click.argument("name")
@click.option(
    "--dest",
    type=click.Path(file_okay=False),
    default=None,
    help="Data root to download into (the files go to the dataset's folder under it, e.g. DIR/mnist/); "
    "default: $ROBRANK_DATA, else the reference layout under ~/.torch.",
)
@click.option("--timeout", type=FiniteFloat(min=0.0, min_open=True), default=30.0, help="Seconds to wait on each connection [default: 30].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (nothing else on stdout).")
def download_dataset(name: str, dest: str | None, timeout: float, as_json: bool) -> None:
    """Download dataset NAME and verify its checksums (MNIST, Fashion-MNIST, CIFAR-10)."""
    from ..data.base import data_root_from_env  # lazy: keeps robrank --help torch-free
    from ..data.loading import get_source  # lazy: keeps robrank --help torch-free

    root = data_root_from_env(dest)
    source = get_source(name, root, registry=get_registry())
    target = source.install_dir(root)
    if _accepts(source.download, "timeout"):
        path = source.download(target, progress=_interactive() and not as_json, timeout=timeout)
    else:  # a third-party source with the base signature
        path = source.download(target)
    path = Path(path) if path is not None else target
    if not source.is_present(path):
        raise DataError(f"download of {source.name!r} finished but {path} does not hold its files; report this to the plugin's author")
    summary = source.verify(path) if not source.verify_is_slow else None
    if as_json:
        click.echo(json.dumps({"dataset": source.name, "path": str(path), "summary": summary}, indent=2))
        return
    click.echo(f"{source.name}: ready in {path}" + (f": {summary}" if summary else ""))


def _accepts(function: Any, keyword: str) -> bool:
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _interactive() -> bool:
    return sys.stderr.isatty()
