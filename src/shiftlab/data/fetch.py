"""Download one file over HTTP(S) into the cache, verified by sha256, as torchvision's
``download_url`` does: a file already there with the right digest is used as it is; a download
is written beside its destination and moved into place only once its digest matches, so a failed
or corrupted download never leaves a file in the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from shiftlab.errors import DataError
from shiftlab.runtime import log

CHUNK = 1 << 20
TIMEOUT_S = 60


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return _file_digest(path, hashlib.sha256())


def file_md5(path: Path) -> str:
    """Hex md5 of a file's bytes (an integrity check, as torchvision's)."""
    return _file_digest(path, hashlib.md5(usedforsecurity=False))


def _file_digest(path: Path, digest: Any) -> str:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: Path, sha256: str, md5: str | None = None) -> bool:
    """Whether a file's sha256 is ``sha256`` (or its md5 is ``md5``, where given)."""
    return file_sha256(path) == sha256 or (md5 is not None and file_md5(path) == md5)


def fetch(url: str, dest: Path, sha256: str, md5: str | None = None) -> Path:
    """``dest``, downloaded from ``url`` unless it is already there with digest ``sha256``.

    ``md5`` is a second accepted digest, for a source whose file is known by its md5 only (as
    torchvision's checks are).

    Raises:
        DataError: the download failed, or its digest is not ``sha256`` (nor ``md5``) (file and
            URL named); nothing is left at ``dest`` then.
    """
    if dest.is_file():
        if verified(dest, sha256, md5):
            return dest
        log(f"{dest} does not match its sha256; downloading it again")
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {dest.name} from {url}")
    handle, partial = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest, second = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as res:
            for block in iter(lambda: res.read(CHUNK), b""):
                digest.update(block)
                second.update(block)
                out.write(block)
        if digest.hexdigest() != sha256 and (md5 is None or second.hexdigest() != md5):
            raise DataError(
                f"{dest.name} from {url} has sha256 {digest.hexdigest()[:12]}..., expected "
                f"{sha256[:12]}...: the download is corrupt or the source changed; nothing was kept"
            )
        os.replace(partial, dest)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(
            f"could not download {dest.name} from {url} ({reason}); put the file in the data "
            "folder by hand, or point the mirror at a server that has it"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return dest
