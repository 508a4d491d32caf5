"""Reading a run config: YAML, ``--set`` overrides, and parsing into :mod:`.sections`.

A run config is YAML::

    data: {kind: vader, id_domains: [movie], ood_domains: [tweets, amazon, nyt]}
    backbone: minilm
    prompts: ["a {class_name} review."]
    recipes: [zero_shot, linear_probe, {full_ft: {epochs: 2}}, wise_ft]

The top-level keys are the fields of :class:`RunConfig`; a field is parsed by its entry in
:data:`PARSERS` or, without one, converted to its annotated type. Every entry list (recipes,
adapt, curate, conjugate, unlearn methods) goes through one parser, :func:`parse_entries`,
which builds each entry's options dataclass at once, so an unknown option, a wrong type or an
out-of-range value is an error before anything runs, naming the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from shiftlab.config.sections import (
    DATA_COMMON,
    DEFAULT_RECIPES,
    BackboneConfig,
    CapabilityConfig,
    CurationConfig,
    DataConfig,
    EntrySpec,
    ExecutorConfig,
    MLflowConfig,
    RunConfig,
    TaskConfig,
    TrackingConfig,
    UnlearnConfig,
)
from shiftlab.errors import ConfigError, ShiftlabError
from shiftlab.files import read_text
from shiftlab.registry import (
    ADAPT,
    CURATE,
    CURATE_ACTIONS,
    DATASETS,
    FINETUNE,
    TRANSFORMS,
    UNLEARN,
    Registry,
    closest,
)
from shiftlab.runtime import log
from shiftlab.typed import build, check_field, coerce, constraints

#: Unlearning's reference method: the recipe retrained without the forget set (not registered:
#: it is the run's own recipe, not a method on a model).
RETRAIN = "retrain"


def parse_data(raw: Any, where: str = "data") -> DataConfig:
    """The data section: the common keys, and the loader's own options from the rest."""
    if not isinstance(raw, Mapping) or "kind" not in raw:
        raise ConfigError(
            f"{where} must be a mapping with a 'kind' (one of: {', '.join(DATASETS.names())})"
        )
    entry = DATASETS[str(raw["kind"])]
    own = {f.name for f in dataclasses.fields(entry.options)} if entry.options else set()

    def is_common(key: str, value: Any) -> bool:
        # A loader's own option of the same name (colored_digits' label_noise: 0.25) wins
        # unless the value has the common section's shape (a mapping).
        return key in DATA_COMMON and not (key in own and not isinstance(value, Mapping))

    common = {k: v for k, v in raw.items() if is_common(k, v)}
    rest = {k: v for k, v in raw.items() if not is_common(k, v)}
    if entry.options is None:
        if rest:
            raise ConfigError(f"unknown key '{where}.{next(iter(rest))}' for kind '{entry.name}'")
        options = None
    else:
        if "labels" in rest and "labels" not in own:
            raise ConfigError(
                f"{where}.labels: {rest['labels']} needs per-rater labels, which kind "
                f"'{entry.name}' does not have (vader does); for synthetic noise with known "
                f"truth use {where}.label_noise: {{rate: 0.2}}"
            )
        try:
            options = build(entry.options, rest, where)
        except ConfigError as exc:
            message = str(exc)
            if message.startswith("unknown key"):
                message += f"; common keys: {', '.join(sorted(DATA_COMMON))}"
            raise ConfigError(message) from None
    data = build(DataConfig, common, where)
    data.options = options
    return data


def parse_backbone(raw: Any, where: str = "backbone") -> BackboneConfig:
    """A backbone section, or just its name."""
    backbone = build(BackboneConfig, {"name": raw} if isinstance(raw, str) else raw, where)
    if not backbone.name.strip():
        raise ConfigError(f"{where}.name must not be empty")
    return backbone


def entry_items(raw: Any, section: str) -> list[tuple[str, dict[str, Any]]]:
    """``[NAME, {NAME: {options}}, ...]`` as (kind, options) pairs."""
    if not isinstance(raw, list):
        raise ConfigError(f"{section} must be a list, e.g. [zero_shot, {{full_ft: {{epochs: 2}}}}]")
    items = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            items.append((item, {}))
        elif isinstance(item, Mapping) and len(item) == 1:
            ((kind, options),) = item.items()
            if options is not None and not isinstance(options, Mapping):
                raise ConfigError(f"{section}[{i}].{kind} must be a mapping of options")
            items.append((str(kind), dict(options or {})))
        else:
            raise ConfigError(
                f"{section}[{i}] must be a name or {{name: {{options}}}}, got {item!r}"
            )
    return items


def parse_entries(
    raw: Any,
    section: str,
    registry: Registry[Any] | None,
    *,
    takes_on: bool = False,
    reserved: dict[str, type | None] | None = None,
    unique: bool = True,
) -> list[EntrySpec]:
    """Every entry of one list, its options built now (unknown keys and bad values are errors).

    Args:
        raw: the list as written.
        section: its place in the config, for messages (``recipes``, ``unlearn.methods``).
        registry: where each entry's kind is registered.
        takes_on: entries may name the predictors they apply to (``on:``).
        reserved: kinds that are not registered but allowed, with their options class
            (``retrain`` in ``unlearn.methods``).
        unique: names must differ (curated sets are told apart by their labels instead).
    """
    specs: list[EntrySpec] = []
    for kind, options in entry_items(raw, section):
        if reserved is not None and kind in reserved:
            options_class = reserved[kind]
        else:
            entry = registry[kind]
            if entry.name != kind:
                log(f"{section}: '{kind}' is now called '{entry.name}' (the old name still works)")
            options_class = entry.options
        explicit = options.pop("name", None)
        on = options.pop("on", None) if takes_on else None
        where = f"{section}.{kind if explicit is None else explicit}"
        if registry is FINETUNE and "loss" in options and "loss" not in field_names(options_class):
            raise ConfigError(
                f"{where}: '{kind}' trains with its own objective and cannot use loss: "
                f"{options['loss']}; recipes that take a loss: {', '.join(loss_takers(registry))}"
            )
        on = None if on is None else coerce(on, list[str], f"{where}.on")
        built = build(options_class, options, where) if options_class is not None else None
        if built is None and options:
            raise ConfigError(f"{where} takes no options, got {', '.join(options)}")
        # A loss other than cross-entropy names the entry unless a name is given (full_ft_gce).
        suffix = built.name_suffix() if hasattr(built, "name_suffix") else ""
        name = str(kind + suffix if explicit is None else explicit)
        if unique and any(s.name == name for s in specs):
            what = {"recipes": "recipes", "adapt": "adapters"}.get(section, f"{section} entries")
            raise ConfigError(f"two {what} are named '{name}'; give one a distinct 'name:' option")
        specs.append(EntrySpec(name, kind, built, on))
    return specs


def field_names(options_class: type | None) -> set[str]:
    """The option names of an options dataclass (none for a method without options)."""
    if options_class is None or not dataclasses.is_dataclass(options_class):
        return set()
    return {f.name for f in dataclasses.fields(options_class)}


def loss_takers(registry: Registry[Any] | None) -> list[str]:
    """The entries of ``registry`` whose options include a training loss."""
    if registry is None:
        return []
    return [n for n in registry.names() if "loss" in field_names(registry[n].options)]


def parse_recipes(raw: Any, where: str = "recipes") -> list[EntrySpec]:
    """The recipe entries (default the six standard recipes); names may not hold ``@`` or
    ``[`` (seed repeats and grids use them)."""
    if raw is not None and not raw:
        raise ConfigError(
            f"{where} is empty, so the run would train and score nothing; list recipes, or "
            "leave the key out for the six standard ones"
        )
    specs = parse_entries(list(DEFAULT_RECIPES) if raw is None else raw, where, FINETUNE)
    warn_unusual(specs, where)
    for spec in specs:
        if "@" in spec.name or "[" in spec.name:
            raise ConfigError(
                f"recipe name '{spec.name}' may not hold '@' or '[' (seeds and grids use them)"
            )
    return specs


def parse_curation(raw: Any, where: str = "curation") -> CurationConfig:
    cfg = build(CurationConfig, raw, where)
    for score, options in cfg.scores.items():
        build(CURATE[score].options, options or {}, f"{where}.scores.{score}")  # checked now
    if cfg.folds < 2:
        raise ConfigError(f"{where}.folds must be >= 2, got {cfg.folds}")
    return cfg


def parse_task(raw: Any, where: str, cls: type = TaskConfig) -> Any:
    """A task (or capability); a label permutation without demonstrations is warned about."""
    task = build(cls, raw, where)
    if task.label_map == "permuted" and task.shots == 0 and task.label_words:
        log(
            f"warning: {where}: label_map permuted with shots 0: no demonstration shows the "
            "permuted labels, so the gold labels disagree with every prompt"
        )
    return task


def warn_unusual(specs: list[EntrySpec], where: str) -> None:
    """Warn (one line each) about legal settings that are rarely meant."""
    for spec in specs:
        lr, optimizer = getattr(spec.options, "lr", None), getattr(spec.options, "optimizer", "")
        if optimizer in ("adam", "adamw") and lr is not None and lr > 1e-2:
            log(
                f"warning: {where}.{spec.name}.lr {lr:g} is large for {optimizer} (fine-tuning "
                "a pretrained model uses 1e-5 to 1e-3)"
            )


def parse_capabilities(raw: Any, where: str = "capabilities") -> list[CapabilityConfig]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{where} must be a list of tasks, each with its own data section")
    found = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or "data" not in item:
            raise ConfigError(f"{where}[{i}] needs a data section and a task (template, ...)")
        options = {k: v for k, v in item.items() if k != "data"}
        capability = parse_task(options, f"{where}[{i}]", CapabilityConfig)
        capability.data = parse_data(item["data"], f"{where}[{i}].data")
        found.append(capability)
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        raise ConfigError(f"two {where} share a name; give each its own 'name:'")
    return found


FORGET_KINDS = ("ids", "domain", "class", "curation")


def parse_unlearn(raw: Any, where: str = "unlearn") -> UnlearnConfig | None:
    if raw is None:
        return None
    raw = coerce(raw, dict, where)
    methods = raw.get("methods", [RETRAIN])
    cfg = build(UnlearnConfig, {k: v for k, v in raw.items() if k != "methods"}, where)
    if len(cfg.forget) != 1 or next(iter(cfg.forget)) not in FORGET_KINDS:
        raise ConfigError(
            f"{where}.forget names one of {', '.join(FORGET_KINDS)}, "
            "e.g. {curation: label_issues}"
        )
    cfg.methods = parse_entries(methods, f"{where}.methods", UNLEARN, reserved={RETRAIN: None})
    return cfg


def parse_executor(raw: Any, where: str = "executor") -> ExecutorConfig:
    return build(ExecutorConfig, {"kind": raw} if isinstance(raw, str) else raw, where)


def parse_tracking(raw: Any, where: str = "tracking") -> TrackingConfig:
    """``tracking: {mlflow: {uri: ..., experiment: ...}}``; ``mlflow: {}`` or ``mlflow: true``
    take the defaults, ``mlflow: null`` (the default) or ``false`` turn it off."""
    if raw is None:
        return TrackingConfig()
    raw = dict(raw) if isinstance(raw, Mapping) else raw
    if isinstance(raw, dict) and isinstance(raw.get("mlflow"), bool):
        raw["mlflow"] = {} if raw["mlflow"] else None
    if isinstance(raw, dict) and isinstance(raw.get("mlflow"), Mapping):
        raw["mlflow"] = build(MLflowConfig, raw["mlflow"], f"{where}.mlflow")
    return build(TrackingConfig, raw, where)


def parse_prompts(raw: Any, where: str = "prompts") -> list[str]:
    prompts = coerce(raw, list[str], where)
    for prompt in prompts:
        if "{class_name}" not in prompt:
            raise ConfigError(f"prompt {prompt!r} must contain '{{class_name}}'")
    return prompts


#: How each top-level key is parsed when plain conversion to its type is not enough; each is
#: called with the raw value (or None when the key is absent) and the key.
PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "data": parse_data,
    "backbone": lambda raw, where: BackboneConfig() if raw is None else parse_backbone(raw),
    "prompts": lambda raw, where: parse_prompts(["{class_name}"] if raw is None else raw),
    "recipes": parse_recipes,
    "adapt": lambda raw, where: parse_entries(raw or [], where, ADAPT, takes_on=True),
    "curation": parse_curation,
    "curate": lambda raw, where: parse_entries(raw or [], where, CURATE_ACTIONS, unique=False),
    "task": lambda raw, where: None if raw is None else parse_task(raw, where),
    "capabilities": parse_capabilities,
    "conjugate": lambda raw, where: parse_entries(raw or [], where, TRANSFORMS, takes_on=True),
    "unlearn": parse_unlearn,
    "executor": lambda raw, where: ExecutorConfig() if raw is None else parse_executor(raw),
    "tracking": parse_tracking,
}


def parse(raw: Mapping[str, Any]) -> RunConfig:
    """Validate a raw config mapping and resolve every section to its dataclass."""
    if not isinstance(raw, Mapping):
        raise ConfigError("a run config must be a YAML mapping with at least a 'data:' section")
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    for key in raw:
        if key not in fields:
            hint = closest(str(key), list(fields))
            more = f"; did you mean '{hint}'?" if hint else ""
            raise ConfigError(f"unknown top-level key '{key}'{more}")
    if "data" not in raw:
        raise ConfigError("the config has no 'data:' section")
    hints = typing.get_type_hints(RunConfig)
    values: dict[str, Any] = {}
    for name in fields:
        if name in PARSERS:
            values[name] = PARSERS[name](raw.get(name), name)
        elif name in raw:
            values[name] = coerce(raw[name], hints[name], name)
        if name in values:
            check_field(constraints(RunConfig, name), values[name], name)
    return RunConfig(**values)


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only ``true``/``false``, so ``on:`` (adapters) and ``no`` stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def read_yaml(text: str) -> Any:
    """Parse YAML text as the config files and ``--set`` values are read."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe


def read_yaml_file(path: Path, what: str, error: type[ShiftlabError] = ConfigError) -> Any:
    """The YAML content of ``path``: one-line errors (``error``) for a missing or non-UTF-8
    file and for invalid YAML, with the line and column YAML points at."""
    text = read_text(path, what, error)
    try:
        return read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{what} {path} is not valid YAML{where}: {problem}") from None


def read_mapping_file(path: Path, what: str, error: type[ShiftlabError] = ConfigError) -> dict:
    """:func:`read_yaml_file` for a file that must hold a mapping (an empty file is ``{}``)."""
    raw = read_yaml_file(path, what, error)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        kind = "a list" if isinstance(raw, list) else f"a {type(raw).__name__}"
        raise error(f"{what} {path} holds {kind}; it must be a YAML mapping (key: value lines)")
    return raw


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set key.path=value`` to a raw config in place.

    The value is parsed as YAML (``1e-5``, ``[a, b]``, ``true``). In ``recipes``, the path step
    after ``recipes`` names a recipe entry: ``recipes.full_ft.lr=1e-5``.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    path, text = assignment.split("=", 1)
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"--set has an empty key in {assignment!r}")
    try:
        value = read_yaml(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"--set {path.strip()}: {text!r} is not a valid YAML value ({problem}); quote it "
            "or close its brackets"
        ) from None
    node: Any = raw
    for i, key in enumerate(keys[:-1]):
        if key == "recipes" and i == 0:
            items = raw.setdefault("recipes", list(DEFAULT_RECIPES))
            node = _recipe_options(items, keys[1]) if len(keys) > 2 else None
            if node is None:
                raise ConfigError("--set recipes.NAME.OPTION=VALUE needs a recipe and an option")
            for deeper in keys[2:-1]:
                node = node.setdefault(deeper, {})
            node[keys[-1]] = value
            return
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif isinstance(child, str) and key == "backbone":
            child = node[key] = {"name": child}
        elif not isinstance(child, dict):
            raise ConfigError(f"--set {path}: '{key}' holds a value, not a section")
        node = child
    node[keys[-1]] = value


def _recipe_options(items: list[Any], name: str) -> dict[str, Any]:
    for i, item in enumerate(items):
        if isinstance(item, str) and item == name:
            items[i] = {item: {}}
            return items[i][item]
        if isinstance(item, Mapping) and len(item) == 1:
            ((recipe, options),) = item.items()
            options = options or {}
            if recipe == name or options.get("name") == name:
                items[i] = {recipe: options}
                return options
    names = [i if isinstance(i, str) else next(iter(i)) for i in items]
    raise ConfigError(f"--set: no recipe named '{name}' in recipes (have: {', '.join(names)})")


def load(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config, apply ``--set`` overrides, and validate it."""
    raw = read_mapping_file(Path(path), "config file")
    for assignment in overrides or []:
        apply_override(raw, assignment)
    return parse(raw)
