"""More bad input a new user tries with ``shiftlab run``: a data file that is not UTF-8 text, a
cap of zero, a device this machine lacks, a backbone that is nowhere with no network. Each ends
in one line on stderr, exit status 2, no run directory, and at once."""

from __future__ import annotations

import random
import socket
import time

import pytest
import torch

from helpers import write_config
from shiftlab import hub
from test_cli import assert_one_line_error, run_cli

WORDS = ["good", "great", "fine", "bad", "poor", "awful"]


def small_csv(path):
    """A valid UTF-8 CSV: 40 rows in each of two sites, two classes."""
    rows = ["text,label,site"]
    for site in ("a", "b"):
        for i in range(40):
            label = "positive" if i % 2 else "negative"
            rows.append(f"{WORDS[i % len(WORDS)]} item {i},{label},{site}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def run_config(tmp_path, capsys, text):
    """Run ``text`` as a config into ``tmp_path/out``; (exit status, stderr, seconds)."""
    cfg = write_config(tmp_path / "c.yaml", text)
    start = time.perf_counter()
    code, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "out")], capsys)
    return code, err, time.perf_counter() - start


def assert_only_line(code, err, pattern, tmp_path):
    """One error line, and nothing else on stderr besides progress lines (no warnings, no
    retries); no run directory."""
    assert_one_line_error(code, err, pattern)
    others = [line for line in err.splitlines() if not line.startswith("shiftlab")]
    assert not [line for line in others if line.strip()], err
    assert not (tmp_path / "out").exists()


def latin1_csv(path):
    path.write_bytes("text,label\ncafé au lait,positive\nbad,negative\n".encode("latin-1"))


def random_bytes_csv(path):
    path.write_bytes(random.Random(0).randbytes(4096))


def png_named_csv(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))


def latin1_jsonl(path):
    path.write_bytes('{"text": "café", "label": "positive"}\n'.encode("latin-1"))


@pytest.mark.parametrize(
    ("name", "write", "pattern"),
    [
        (
            "latin1.csv",
            latin1_csv,
            r"latin1\.csv is not UTF-8 text: byte 0xe9 on line 2 is not valid UTF-8 .*"
            r"re-save it as UTF-8",
        ),
        (
            "random.csv",
            random_bytes_csv,
            r"random\.csv is not UTF-8 text: it holds binary data .*CSV file of UTF-8 text",
        ),
        (
            "image.csv",
            png_named_csv,
            r"image\.csv is not UTF-8 text: it looks like a PNG image; data.path must name",
        ),
        (
            "latin1.jsonl",
            latin1_jsonl,
            r"latin1\.jsonl is not UTF-8 text: byte 0xe9 on line 1 .*re-save it as UTF-8",
        ),
    ],
)
def test_a_data_file_that_is_not_utf8_text(tmp_path, capsys, name, write, pattern):
    path = tmp_path / name
    write(path)
    kind = "jsonl" if name.endswith(".jsonl") else "csv"
    code, err, _ = run_config(
        tmp_path, capsys, f"data: {{kind: {kind}, path: {path}}}\nrecipes: [zero_shot]\n"
    )
    assert_only_line(code, err, pattern, tmp_path)


@pytest.mark.parametrize(
    ("caps", "pattern"),
    [
        (
            "max_per_domain: 0",
            r"data.max_per_domain must be >= 1 \(or null for all examples\), got 0",
        ),
        ("max_per_domain: -5", r"data.max_per_domain must be >= 1 .*got -5"),
        ("max_per_domain: {a: 0}", r"data.max_per_domain.a must be >= 1 .*got 0"),
        ("max_per_ood_domain: 0", r"data.max_per_ood_domain must be >= 1 .*got 0"),
    ],
)
def test_a_cap_below_one(tmp_path, capsys, caps, pattern):
    path = small_csv(tmp_path / "mine.csv")
    text = f"data: {{kind: csv, path: {path}, domain_column: site, {caps}}}\n"
    code, err, _ = run_config(tmp_path, capsys, text)
    assert_only_line(code, err, pattern, tmp_path)


@pytest.mark.parametrize(
    ("device", "gpus", "mps", "pattern"),
    [
        (
            "cuda",
            0,
            False,
            r"device 'cuda' requested but CUDA is not available here \(torch reports no GPU\); "
            r"use device: auto or cpu",
        ),
        ("cuda:3", 0, False, r"device 'cuda:3' requested but CUDA is not available here"),
        ("cuda:3", 2, False, r"device 'cuda:3' requested but this machine has 2 CUDA GPUs"),
        ("mps", 0, False, r"device 'mps' requested but MPS \(Apple GPU\) is not available"),
        ("gpu0", 0, False, r"device 'gpu0' is not a device name; use auto, cpu, cuda, cuda:N"),
    ],
)
def test_a_device_this_machine_lacks(
    tmp_path, capsys, monkeypatch, tiny_encoder_dir, device, gpus, mps, pattern
):
    # The same answers on a GPU machine: torch is told what this test's machine has.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    path = small_csv(tmp_path / "mine.csv")
    text = (
        f"data: {{kind: csv, path: {path}, domain_column: site}}\n"
        f"backbone: {tiny_encoder_dir}\nrecipes: [zero_shot]\ndevice: '{device}'\n"
    )
    code, err, _ = run_config(tmp_path, capsys, text)
    assert_only_line(code, err, pattern, tmp_path)


def no_network(monkeypatch):
    """Clear every offline switch and make the hub unreachable, as on a machine offline."""
    from huggingface_hub import constants

    for var in hub.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_connect", lambda host, port, timeout: "Name or service not known")


@pytest.mark.parametrize(
    ("offline", "reason"),
    [
        ("SHIFTLAB_OFFLINE", r"SHIFTLAB_OFFLINE is set"),
        ("HF_HUB_OFFLINE", r"HF_HUB_OFFLINE is set"),
        (None, r"no network: cannot connect to huggingface.co:443: Name or service not known"),
    ],
)
def test_an_unknown_backbone_offline_fails_at_once(tmp_path, capsys, monkeypatch, offline, reason):
    no_network(monkeypatch)
    if offline is not None:
        monkeypatch.setenv(offline, "1")
    path = small_csv(tmp_path / "mine.csv")
    text = (
        f"data: {{kind: csv, path: {path}, domain_column: site}}\n"
        "backbone: no-such-owner/no-such-encoder\nrecipes: [zero_shot]\n"
    )
    code, err, seconds = run_config(tmp_path, capsys, text)
    pattern = (
        r"backbone 'no-such-owner/no-such-encoder' not found: not a registered name "
        r"\(.*minilm.*\), a local folder, or a model in the Hugging Face cache, and the hub "
        rf"cannot be reached \({reason}\)"
    )
    assert_only_line(code, err, pattern, tmp_path)
    assert seconds < 5, seconds


def test_a_missing_backbone_folder_fails_without_asking_the_hub(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hub, "unavailable_reason", lambda *a: pytest.fail("asked the hub"))
    path = small_csv(tmp_path / "mine.csv")
    text = (
        f"data: {{kind: csv, path: {path}, domain_column: site}}\n"
        "backbone: ./models/no-such-folder\nrecipes: [zero_shot]\n"
    )
    code, err, _ = run_config(tmp_path, capsys, text)
    assert_only_line(code, err, r"backbone folder not found: ./models/no-such-folder", tmp_path)


def test_the_hub_probe_is_a_short_connect():
    with socket.socket() as server:  # a port that listens: reachable
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub._connect("127.0.0.1", server.getsockname()[1], 2.0) is None
    with socket.socket() as closed:  # a port nobody listens on: refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    start = time.perf_counter()
    assert hub._connect("127.0.0.1", port, 2.0) is not None
    assert time.perf_counter() - start < 2.5


def test_cache_first_reads_the_cache_offline_then_fails_at_once(monkeypatch):
    from huggingface_hub import constants

    no_network(monkeypatch)
    seen = []

    def load():
        seen.append(constants.HF_HUB_OFFLINE)
        raise OSError("not cached")

    with pytest.raises(Exception, match=r"cannot fetch it \(no network"):
        hub.cache_first(load, lambda reason: f"cannot fetch it ({reason})")
    assert seen == [True]  # one offline try of the cache, no online try
    assert constants.HF_HUB_OFFLINE is False
