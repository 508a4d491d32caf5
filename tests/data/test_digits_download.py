"""Digit files missing locally are downloaded into the cache, sha256-checked, from a mirror:
here a local HTTP server (127.0.0.1) serving copies of the real files."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from shiftlab.data.build import _materialise
from shiftlab.data.digits import FILES, DigitsOptions, digits, locator
from shiftlab.errors import DataError


class _Server:
    """A folder served over HTTP on 127.0.0.1, recording the paths asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.requests = folder, []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        handler = partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/digits"
        serve = partial(self.httpd.serve_forever, poll_interval=0.05)
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def served(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    """Copies of the four real digit files served at <url>/<name>; an empty cache; no local
    digits folder."""
    folder = tmp_path / "www" / "digits"
    folder.mkdir(parents=True)
    for name in FILES:
        shutil.copy(data_dir / "digits" / name, folder / name)
    monkeypatch.setenv("SHIFTLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SHIFTLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("SHIFTLAB_DIGITS_URL", raising=False)
    server = _Server(tmp_path / "www")
    yield server
    server.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_files_download_verify_land_in_the_cache_and_load(served, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAB_DIGITS_URL", served.url)
    data = digits(DigitsOptions(), None)
    sizes = {name: len(_materialise(data, name)) for name in ("usps", "semeion", "mnist_test")}
    assert sizes == {"usps": 9298, "semeion": 1593, "mnist_test": 10000}
    cache = tmp_path / "cache" / "digits"
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILES)  # no partial files left
    for name, (_, sha256, _) in FILES.items():
        assert _sha256(cache / name) == sha256
    assert sorted(served.requests) == sorted(f"/digits/{name}" for name in FILES)
    # a second run reads the cache: no request
    find = locator(None, download=True, mirror=served.url)
    assert find("semeion.data") == cache / "semeion.data"
    assert len(served.requests) == len(FILES)


def test_a_corrupted_download_is_refused_and_nothing_is_kept(served, tmp_path):
    served_file = served.folder / "digits" / "semeion.data"
    raw = bytearray(served_file.read_bytes())
    raw[1000] = ord("1") if raw[1000] != ord("1") else ord("0")  # one byte changed
    served_file.write_bytes(bytes(raw))
    data = digits(DigitsOptions(mirror=served.url + "/"), None)
    url = f"{served.url}/semeion.data"
    with pytest.raises(DataError, match=f"semeion.data from {url} has sha256 .*nothing was kept"):
        _materialise(data, "semeion")
    cache = tmp_path / "cache" / "digits"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_failed_download_names_the_file_and_the_url(served, tmp_path):
    (served.folder / "digits" / "usps.h5").unlink()  # the server answers 404
    find = locator(None, download=True, mirror=served.url)
    with pytest.raises(DataError, match=f"could not download usps.h5 from {served.url}/usps.h5"):
        find("usps.h5")
    assert not (tmp_path / "cache" / "digits" / "usps.h5").exists()


def test_without_a_source_or_with_downloads_off_the_error_says_what_to_do(served, tmp_path):
    with pytest.raises(DataError, match="missing file usps.h5 .*no stable public URL"):
        locator(tmp_path, download=True)("usps.h5")  # usps.h5: a mirror only
    with pytest.raises(DataError, match="missing file semeion.data .*data.download is off"):
        locator(tmp_path, download=False)("semeion.data")
    assert served.requests == []


def test_a_local_file_wins_over_the_cache_and_the_mirror(served, tmp_path, data_dir):
    find = locator(data_dir / "digits", download=True, mirror=served.url)
    assert find("usps.h5") == data_dir / "digits" / "usps.h5"
    assert served.requests == []


def test_semeion_in_uci_space_separated_layout_reads_the_same(tmp_path, data_dir):
    shared = data_dir / "digits" / "semeion.data"
    (tmp_path / "semeion.data").write_text(shared.read_text().replace(",", " "))
    ours = _materialise(digits(DigitsOptions(path=str(tmp_path)), None), "semeion")
    reference = _materialise(digits(DigitsOptions(path=str(shared.parent)), None), "semeion")
    assert (ours.inputs == reference.inputs).all() and (ours.labels == reference.labels).all()
