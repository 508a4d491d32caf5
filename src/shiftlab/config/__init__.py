"""The run config: its sections as dataclasses (:mod:`.sections`) and how a YAML file becomes
them (:mod:`.load`)."""

from shiftlab.config.load import apply_override, load, parse, read_yaml
from shiftlab.config.sections import (
    DEFAULT_RECIPES,
    BackboneConfig,
    CapabilityConfig,
    CorruptionsConfig,
    CurationConfig,
    DataConfig,
    EntrySpec,
    ExecutorConfig,
    LabelNoiseConfig,
    ReportConfig,
    RunConfig,
    SplitConfig,
    TaskConfig,
    UnlearnConfig,
)

__all__ = [
    "DEFAULT_RECIPES",
    "BackboneConfig",
    "CapabilityConfig",
    "CorruptionsConfig",
    "CurationConfig",
    "DataConfig",
    "EntrySpec",
    "ExecutorConfig",
    "LabelNoiseConfig",
    "ReportConfig",
    "RunConfig",
    "SplitConfig",
    "TaskConfig",
    "UnlearnConfig",
    "apply_override",
    "load",
    "parse",
    "read_yaml",
]
