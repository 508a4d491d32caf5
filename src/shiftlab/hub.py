"""Whether the Hugging Face hub can be asked now: offline switches, then one quick connect.

With no network, ``huggingface_hub`` retries each request for about a minute before it gives
up. Backbones named by a hub id are looked up in the local Hugging Face cache first; only when
they are not there is the hub asked, and :func:`unavailable_reason` says at once (in about
:data:`CONNECT_TIMEOUT_S` at most) when it cannot be.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

from shiftlab.errors import BackboneError

T = TypeVar("T")

#: any of these set to 1 / true / yes / on: never ask the hub
OFFLINE_VARS = ("SHIFTLAB_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
CONNECT_TIMEOUT_S = 2.5


def _is_set(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def offline_switch() -> str | None:
    """The environment variable that turns the hub off, if one is set."""
    for var in OFFLINE_VARS:
        if _is_set(os.environ.get(var)):
            return var
    from huggingface_hub import constants

    return "HF_HUB_OFFLINE" if constants.HF_HUB_OFFLINE else None


def _endpoint() -> tuple[str, int]:
    """(host, port) a request to the hub connects to first: its proxy's, where one is set."""
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.hostname:
            return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    return host, port


def _connect(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection to ``host:port`` opens within ``timeout`` seconds (name lookup
    included), else why not."""
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(exc.strerror or str(exc) or type(exc).__name__)

    thread = threading.Thread(target=attempt, name="shiftlab-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer in {timeout:g} s"


def unavailable_reason(timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the hub cannot be asked now (an offline switch, no network), or None when it can."""
    switch = offline_switch()
    if switch is not None:
        return f"{switch} is set"
    host, port = _endpoint()
    error = _connect(host, port, timeout)
    return None if error is None else f"no network: cannot connect to {host}:{port}: {error}"


@contextmanager
def offline() -> Iterator[None]:
    """Within: ``huggingface_hub`` reads its cache only and sends no request (no retries), and
    libraries log no errors (open_clip logs each failed download before raising)."""
    from huggingface_hub import constants

    before, level = constants.HF_HUB_OFFLINE, logging.root.manager.disable
    constants.HF_HUB_OFFLINE = True
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
        logging.disable(level)


def cache_first(load: Callable[[], T], unavailable: Callable[[str], str]) -> T:
    """``load()`` from the local Hugging Face cache; failing that, from the hub if it can be
    reached now.

    Raises:
        BackboneError: ``unavailable(reason)``, at once, when the cache lacks the files and the
            hub cannot be reached.
    """
    try:
        with offline():
            return load()
    except Exception:  # not cached (or unreadable): the hub may have it
        pass
    reason = unavailable_reason()
    if reason is not None:
        raise BackboneError(unavailable(reason))
    return load()


__all__ = [
    "CONNECT_TIMEOUT_S",
    "OFFLINE_VARS",
    "cache_first",
    "offline",
    "offline_switch",
    "unavailable_reason",
]
