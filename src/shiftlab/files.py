"""Files shiftlab reads back and folders it writes into, guarded: a missing, unreadable or
non-UTF-8 file, or an output path that is a file or cannot be written, is one error line that
says what to change, found before any work."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from shiftlab.errors import ConfigError, ShiftlabError


def read_text(path: Path, what: str, error: type[ShiftlabError] = ConfigError) -> str:
    """The UTF-8 text of ``path`` (``what`` names it in messages).

    Raises:
        error: the file is missing, is a folder, cannot be read, or is not UTF-8 text.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{what} not found: {path}")
    if path.is_dir():
        raise error(f"{what} {path} is a folder, not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"{what} {path} is not UTF-8 text (byte {data[exc.start]:#04x} on line {line}); "
            "re-save it as UTF-8"
        ) from None


def check_out_dir(out: Path, what: str = "--out") -> None:
    """Refuse an output folder that cannot be one: a file (or a path through a file), or a place
    this process cannot write. Nothing is left behind: the check writes and removes a probe.

    Raises:
        ConfigError: naming the path and what to do instead.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{what} {out} is a file; give a folder path")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{what} {out} goes through {existing}, which is a file")
    try:
        probe = Path(tempfile.mkdtemp(prefix=".shiftlab-probe-", dir=existing))
    except OSError as exc:
        raise ConfigError(
            f"{what} {out} cannot be written ({exc.strerror or exc} in {existing}); "
            "choose a folder you can write to"
        ) from None
    shutil.rmtree(probe, ignore_errors=True)
