"""One weights-only file: plain values in, an atomic write, a read that says what is wrong.

Every luzwidget file (checkpoints, fitted models, weights) is written by :func:`write` with
``torch.save`` and read back by :func:`read` with ``torch.load(weights_only=True)``: it
holds only what :func:`plain` leaves (tensors, numbers, strings, lists and dicts), so
loading it never runs code from the file. :mod:`luzwidget.storage.checkpoint` and
:mod:`luzwidget.saving` decide what goes in.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from luzwidget.core.distributed import barrier, is_main
from luzwidget.core.exceptions import CheckpointError
from luzwidget.core.values import as_scalar

__all__ = [
    "VERSION",
    "PathLike",
    "plain",
    "read",
    "remove_orphans",
    "remove_stale_tmp",
    "write",
    "write_once",
]

VERSION = 1
PathLike = str | os.PathLike[str]


# -- plain values ----------------------------------------------------------------------


def plain(value: Any, where: str = "value") -> Any:
    """``value`` with only what ``torch.load(weights_only=True)`` accepts.

    Tuples become lists, numpy arrays tensors, numpy scalars Python numbers.

    Raises
    ------
    CheckpointError
        Naming where in the structure a value of another type was found.
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.generic):
        return as_scalar(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, tuple | list):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise CheckpointError(
                    f"{where} has a key {key!r}; only str or int keys can be saved."
                )
            out[key] = plain(v, f"{where}[{key!r}]")
        return out
    raise CheckpointError(
        f"{where} is a {type(value).__name__}, which a checkpoint cannot hold (only tensors, "
        "numbers, strings, lists and dicts, so that loading never runs code). Store it as one "
        "of those, e.g. in the callback's state_dict()."
    )


# -- reading and writing ---------------------------------------------------------------


def write(obj: Mapping[str, Any], path: PathLike) -> Path:
    """``torch.save`` to a temporary file, fsync it, then rename: a kill never leaves half
    a file, and a power loss never a renamed but empty one.

    The directory is fsynced too where the system allows it (POSIX). Temporary files of
    the same target left by a process that was killed while writing are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path, os.getpid())
    try:
        with open(tmp, "wb") as file:
            torch.save(dict(obj), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    remove_stale_tmp(path)
    return path


def write_once(make: Callable[[], Mapping[str, Any]], path: PathLike) -> Path:
    """:func:`write` ``make()`` to ``path`` on rank 0 only, then wait for every rank.

    In one process this is ``write(make(), path)``. Under torch.distributed the other
    ranks build nothing and read the file only once rank 0 has renamed it into place.
    """
    if is_main():
        path = write(make(), path)
    barrier()
    return Path(path)


def _tmp_path(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def remove_stale_tmp(path: PathLike) -> list[Path]:
    """Remove the temporary files of ``path`` (``.name.<pid>.tmp``) whose writer is gone.

    A file of this process, or of a process that no longer runs, is stale: a kill landed
    inside :func:`write`. Files of a running process are kept (it may be writing now).
    Returns the files removed.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed: list[Path] = []
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for candidate in candidates:
        pid = candidate.name[len(prefix) :].removesuffix(".tmp")
        if not candidate.name.endswith(".tmp") or not pid.isdigit() or _running(int(pid)):
            continue
        try:
            candidate.unlink()
            removed.append(candidate)
        except OSError:
            pass
    return removed


def remove_orphans(directory: PathLike, prefix: str) -> list[Path]:
    """Remove the files of dead processes in ``directory``: ``<prefix><pid>-...`` (a file
    a process owned and never removed, e.g. after kill -9) and the temporary files of
    :func:`write` for such names. Files of running processes, this one included, are kept.
    Returns the files removed.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name.removeprefix(".")
        if not name.startswith(prefix):
            continue
        owner = name[len(prefix) :].partition("-")[0]
        writer = name.removesuffix(".tmp").rpartition(".")[2] if name.endswith(".tmp") else owner
        pids = [int(p) for p in (owner, writer) if p.isdigit()]
        if len(pids) < 2 or any(p == os.getpid() or _running(p) for p in pids):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def _running(pid: int) -> bool:
    """Whether another process ``pid`` runs (POSIX); elsewhere any other pid counts as running."""
    if pid == os.getpid():
        return False
    if os.name != "posix":
        return True  # os.kill(pid, 0) would not ask, it would signal
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. PermissionError: it exists, owned by someone else
    return True


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable: fsync the directory (POSIX only; elsewhere a no-op)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory
    finally:
        os.close(fd)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read(path: PathLike, kind: str | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with errors that name the file.

    Parameters
    ----------
    kind
        ``"checkpoint"`` or ``"fitted"``: the file must be of that kind. None: anything.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    CheckpointError
        If the file is truncated, corrupt, holds objects other than plain values, was
        written by a newer luzwidget, or is not of ``kind``. The message is plain text and
        never suggests loading with ``weights_only=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {str(path)!r}: {_why_unreadable(exc)}") from exc
    header = obj.get("luzwidget") if isinstance(obj, dict) else None
    version = header.get("version") if isinstance(header, dict) else None
    if isinstance(version, int) and version > VERSION:
        raise CheckpointError(
            f"{str(path)!r} was written by a newer luzwidget (file format {version}; this "
            f"version reads format {VERSION} and older). Upgrade luzwidget to load it."
        )
    if kind is not None:
        found = header.get("kind") if isinstance(header, dict) else None
        if found != kind:
            what = f"a luzwidget {found} file" if found else "not a luzwidget file"
            raise CheckpointError(f"{str(path)!r} is {what}; expected a luzwidget {kind} file.")
    return obj


def _why_unreadable(exc: Exception) -> str:
    """Why torch.load refused a file, in plain text, without torch's weights_only advice."""
    text = _ANSI.sub("", str(exc))
    found = _GLOBAL.search(text) if isinstance(exc, pickle.UnpicklingError) else None
    if found:
        return (
            f"it is not a luzwidget file: it holds Python objects besides plain values (a "
            f"{found.group(1)}). luzwidget files hold only tensors, numbers, strings, lists and "
            "dicts, and luzwidget never unpickles objects. Load it with the code that wrote it."
        )
    _, marker, after = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (after if marker else text).splitlines() if line.strip()]
    first = lines[0] if lines else "(no message)"
    detail = "" if "weights_only" in first else f" ({type(exc).__name__}: {first[:200]})"
    return (
        "the file is truncated or corrupt, or was not written by torch.save, so it is not a "
        f"luzwidget file{detail}."
    )
