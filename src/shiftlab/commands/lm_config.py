"""The config file and output folder of a command that reads a language model (``shiftlab
audit``, ``shiftlab membership``): a mapping of ``backbone:`` and one section, checked before
the model loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shiftlab.config.load import read_mapping_file
from shiftlab.config.sections import BackboneConfig
from shiftlab.errors import ConfigError
from shiftlab.files import check_out_dir
from shiftlab.models import backbone_kinds
from shiftlab.typed import build, coerce


def read_lm_config(path: Path, section: str, needs: str) -> tuple[BackboneConfig, dict[str, Any]]:
    """The backbone (a language model) and the raw ``section`` of a command's config file.

    Raises:
        ConfigError: a file that is not a mapping of these two keys, or a backbone that is not
            a language model (``needs`` says what the command does with one).
    """
    raw = read_mapping_file(path, f"{section} config")
    unknown = set(raw) - {"backbone", section}
    if unknown:
        raise ConfigError(
            f"unknown key '{sorted(unknown)[0]}' in a {section} config (backbone, {section})"
        )
    backbone = raw.get("backbone") or {}
    backbone = build(
        BackboneConfig, {"name": backbone} if isinstance(backbone, str) else backbone, "backbone"
    )
    if "causal_lm" not in backbone_kinds(backbone):
        raise ConfigError(
            f"{needs}; backbone '{backbone.name}' is not one (use e.g. smollm2-135m-instruct "
            "or hf_causal_lm:<folder>)"
        )
    return backbone, coerce(raw.get(section) or {}, dict, section)


def check_output(out: Path, marker: str, what: str) -> None:
    """An output folder that can be written and is new, empty, or an earlier ``what`` folder
    (it holds ``marker``)."""
    check_out_dir(out)
    if out.exists() and any(out.iterdir()) and not (out / marker).is_file():
        raise ConfigError(f"{out} exists and is not a {what} directory; choose another --out")
