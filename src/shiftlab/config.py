"""Run config: dataclasses, YAML loading, dotted overrides and validation.

A run config is YAML::

    data: {kind: vader, id_domains: [movie], ood_domains: [tweets, amazon, nyt]}
    backbone: minilm
    prompts: ["a {class_name} review."]
    recipes: [zero_shot, linear_probe, {full_ft: {epochs: 2}}, wise_ft]

Every section is a dataclass built with :func:`shiftlab.typed.build`, so an unknown key is an
error that names the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from shiftlab.errors import ConfigError
from shiftlab.registry import (
    ADAPT,
    BACKBONES,
    CURATE,
    CURATE_ACTIONS,
    DATASETS,
    FINETUNE,
    TRANSFORMS,
    UNLEARN,
    closest,
)
from shiftlab.typed import NoOptions, build, coerce, param, ref, to_plain

DEFAULT_RECIPES = ["zero_shot", "linear_probe", "full_ft", "lp_ft", "flyp", "wise_ft"]


@dataclass
class SplitConfig:
    """Fractions of each ID domain that go to train, val and test (stratified by label)."""

    train: float = param(0.6, "fraction of each ID domain used for training")
    val: float = param(0.2, "fraction used for ID validation (model selection, calibration)")
    test: float = param(0.2, "fraction used for the ID test")

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"data.split.{name} must be in (0, 1], got {getattr(self, name)}")
        if self.train + self.val + self.test > 1 + 1e-9:
            raise ConfigError("data.split fractions train + val + test must not exceed 1")


@dataclass
class CorruptionsConfig:
    """Corrupted copies of the ID test split, as extra OOD splits (image benchmarks)."""

    types: list[str] | None = param(None, "corruptions to apply; default every one")
    severities: list[int] = param([1, 2, 3, 4, 5], "severities, 1 (mild) to 5 (strong)")
    per_split: int | None = param(None, "examples per corrupted split (stratified); default all")


@dataclass
class LabelNoiseConfig:
    """Synthetic label noise on the ID domains (:mod:`shiftlab.data.label_noise`)."""

    rate: float = param(0.2, "fraction of each ID domain's labels made wrong (exactly)")
    kind: Literal["symmetric", "pair"] = param("symmetric", "symmetric or pair (k -> k + 1)")
    seed: int = param(0, "seed of which labels flip and to what")

    def __post_init__(self) -> None:
        if not 0 <= self.rate < 1:
            raise ConfigError(f"data.label_noise.rate must be in [0, 1), got {self.rate}")


@dataclass
class DataConfig:
    """Which benchmark to build: a registered loader, its domains, classes and sizes."""

    kind: str
    id_domains: list[str] | None = None
    ood_domains: list[str] | None = None
    class_names: list[str] | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    max_per_domain: int | dict[str, int] | None = None
    max_per_ood_domain: int | None = None
    seed: int = 0
    corruptions: CorruptionsConfig | None = None
    groups: str | None = None  # label_x_domain, label_x_<attribute>; default the loader's
    label_noise: LabelNoiseConfig | None = None  # synthetic noise on the ID domains' labels
    options: Any = None  # the loader's own dataclass, built from the remaining keys

    def to_dict(self) -> dict[str, Any]:
        """Flatten back to the YAML form: common keys plus the loader's options."""
        out = {k: to_plain(v) for k, v in dataclasses.asdict(self).items() if k != "options"}
        out.update(to_plain(self.options) if self.options is not None else {})
        return out


_DATA_COMMON = {f.name for f in dataclasses.fields(DataConfig)} - {"options"}


@dataclass
class BackboneConfig:
    """The pretrained featurizer: a registered name (``minilm``, ``efficientnet_lite0``,
    ``timm:<model>``, ``open_clip:<arch>``, ...), or a Hugging Face folder or model id."""

    name: str = "minilm"
    max_length: int | None = None  # tokens; default: the model's own limit
    batch_size: int | None = None  # encoding batch; default 32 on CPU, 256 on CUDA
    logit_scale: float | None = None  # zero-shot head scale; default: the backbone's
    # Image backbones:
    pretrained: bool | str = True  # timm: true/false/a weights file; open_clip: a tag or file
    image_size: int | None = None  # input resolution; default: the model's own
    augment: bool = False  # train-time augmentation (timm's training transform)
    channels_last: bool = False  # channels-last memory format for convolutional backbones
    gguf_file: str | None = None  # causal LMs: a GGUF checkpoint inside the folder / repository


@dataclass
class ReportConfig:
    """How the report judges robustness."""

    baselines: list[str] | None = param(
        None,
        "models, recipe entries or recipes whose ID-OOD trend defines effective robustness; "
        "default: the standard ID-trained models (linear probes, full_ft, erm, soup "
        "ingredients, with their extra trend points), never zero_shot",
    )
    link: Literal["probit", "logit"] = param(
        "logit", "space in which the trend is linear (Taori et al.: logit)"
    )
    reference: str | None = param(
        None,
        "the model every other is compared with (paired bootstrap, McNemar); default full_ft "
        "where present, else the first standard model",
    )


@dataclass
class TaskConfig:
    """A language-model task: a prompt template plus label words (classification: each class
    scored by the log-probability of its verbalizer) or reference answers (generation)."""

    name: str = param("task", "the task's name in records")
    template: str = param("{text}", "the prompt; {text} is the example's text")
    label_words: dict[str, str] | None = param(
        None, "class name -> verbalizer scored after the prompt, e.g. {positive: ' positive'}"
    )
    shots: int = param(0, "seeded demonstrations from the task's training split before each prompt")
    label_map: Literal["identity", "permuted"] = param(
        "identity",
        "permuted: demonstrations and gold labels use a seeded permutation of the label words",
    )
    separator: str = param("\n\n", "between demonstrations and the query")
    chat: bool = param(False, "wrap each prompt in the model's chat template (a user turn)")
    max_new_tokens: int = param(16, "greedy decoding length of generation tasks")
    seed: int = param(0, "seed of the demonstrations and of the label permutation")

    def __post_init__(self) -> None:
        if self.shots < 0 or self.max_new_tokens < 1:
            raise ConfigError(f"task {self.name}: shots >= 0 and max_new_tokens >= 1 needed")


@dataclass
class CapabilityConfig(TaskConfig):
    """A task the model never trains on, scored as an OOD split of its own (a capability)."""

    data: Any = None  # a data section, as the run's own
    split: Literal["train", "id_val", "id_test"] = param("id_test", "which split of its data")
    max_examples: int | None = param(200, "stratified cap on the examples scored")


@dataclass
class ConjugateSpec:
    """One entry of ``conjugate:``: a prompt transform, its options, and the predictors it
    evaluates (``on``; default every recipe entry)."""

    name: str
    transform: str
    options: dict[str, Any]
    on: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        options = dict(self.options)
        if self.on is not None:
            options = {"on": list(self.on), **options}
        if self.name != self.transform:
            options = {"name": self.name, **options}
        return {self.transform: options}


@dataclass
class UnlearnSpec:
    """One entry of ``unlearn.methods``: a registered unlearning method and its options."""

    name: str
    method: str
    options: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {self.method: dict(self.options)} if self.options else self.method  # type: ignore[return-value]


@dataclass
class UnlearnConfig:
    """Take training examples back out of a trained model, judged against retraining."""

    forget: dict[str, Any] = param(
        {},
        "what to forget: {ids: FILE or [ids]}, {domain: NAME}, {class: NAME} or {curation: SCORE}",
    )
    on: str | None = param(None, "the trained predictor to unlearn; default the first that trains")
    methods: list[Any] = param(
        ["retrain"], "methods, as recipes are listed (retrain is the reference)"
    )
    knowmem_forget: str | None = param(None, "LMs: the split of questions about the forget set")
    knowmem_retain: str | None = param(None, "LMs: the split of questions about the retain set")
    holdout: str | None = param(None, "LMs: the split of non-member texts (PrivLeak, perplexity)")
    membership_k: float = param(0.4, "k of Min-K% in PrivLeak (MUSE: 0.4)")


@dataclass
class ExecutorConfig:
    """Where the run's work happens: in this process, or as a graph of Ray tasks."""

    kind: Literal["local", "ray"] = param("local", "local: this process; ray: Ray tasks")
    address: str | None = param(None, "a Ray cluster's address; default a local Ray instance")
    resources: dict[str, float] = param(
        {"num_cpus": 1}, "Ray resources of every task, e.g. {num_cpus: 4, num_gpus: 1}"
    )


@dataclass
class CurationConfig:
    """How curation scores are computed, and which recipes retrain on each curated set."""

    scorer: str = param(
        "linear_probe",
        "out-of-sample probabilities from K-fold linear probes on cached features (no encoder "
        "pass), or a training recipe entry of the run (e.g. full_ft: K fine-tunings, costlier)",
    )
    folds: int = param(5, "K of the stratified, seeded K-fold")
    scores: dict[str, dict[str, Any]] = param(
        {}, "scores to compute besides those the actions need, with their options"
    )
    retrain: list[str] | None = param(
        None, "recipe entries retrained on each curated set; default every entry that trains"
    )
    test_label_errors: bool = param(
        True, "look for label errors in ID test and OOD splits (confident learning)"
    )


@dataclass
class CurateSpec:
    """One entry of ``curate:``: a curation action and its options."""

    name: str
    action: str
    config: Any

    def to_dict(self) -> dict[str, Any]:
        options = to_plain(self.config)
        if self.name != self.action:
            options = {"name": self.name, **options}
        return {self.action: options}


@dataclass
class RecipeSpec:
    """One entry of ``recipes:``: the predictor base name, the recipe, and its options."""

    name: str
    recipe: str
    config: Any
    seed: int | None = None  # set by seeds.expand; None: the run's seed

    def to_dict(self) -> dict[str, Any]:
        """The YAML form ``{recipe: {name: ..., option: value}}``."""
        options = to_plain(self.config)
        if self.name != self.recipe:
            options = {"name": self.name, **options}
        return {self.recipe: options}


@dataclass
class AdaptSpec:
    """One entry of ``adapt:``: a name, the adapter, its options, and the predictors it runs on
    (``on``; default every saved predictor)."""

    name: str
    adapter: str
    config: Any
    on: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The YAML form ``{adapter: {name: ..., on: [...], option: value}}``."""
        options = to_plain(self.config)
        if self.on is not None:
            options = {"on": list(self.on), **options}
        if self.name != self.adapter:
            options = {"name": self.name, **options}
        return {self.adapter: options}


@dataclass
class RunConfig:
    """A whole run: benchmark, backbone, class prompts, recipes, seed, device; whether to add
    temperature-scaled predictors; how the report measures robustness."""

    data: DataConfig
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    prompts: list[str] = field(default_factory=lambda: ["{class_name}"])
    recipes: list[RecipeSpec] = field(default_factory=list)
    seed: int = 0
    device: str = "auto"
    calibrate: bool = False
    report: ReportConfig = field(default_factory=ReportConfig)
    adapt: list[AdaptSpec] = field(default_factory=list)
    curation: CurationConfig = field(default_factory=CurationConfig)
    curate: list[CurateSpec] = field(default_factory=list)
    task: TaskConfig | None = None
    capabilities: list[CapabilityConfig] = field(default_factory=list)
    conjugate: list[ConjugateSpec] = field(default_factory=list)
    unlearn: UnlearnConfig | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on a bf16 GPU
    seeds: list[int] | None = None  # repeat every training recipe per seed
    executor: ExecutorConfig = field(default_factory=lambda: ExecutorConfig())

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, every default filled in, as written to the run directory."""
        return {
            "data": self.data.to_dict(),
            "backbone": to_plain(self.backbone),
            "prompts": list(self.prompts),
            "recipes": [spec.to_dict() for spec in self.recipes],
            "seed": self.seed,
            "device": self.device,
            "calibrate": self.calibrate,
            "report": to_plain(self.report),
            "adapt": [spec.to_dict() for spec in self.adapt],
            "curation": to_plain(self.curation),
            "curate": [spec.to_dict() for spec in self.curate],
            "task": to_plain(self.task),
            "capabilities": [{**to_plain(c), "data": c.data.to_dict()} for c in self.capabilities],
            "conjugate": [spec.to_dict() for spec in self.conjugate],
            "unlearn": None if self.unlearn is None else to_plain(self.unlearn),
            "precision": self.precision,
            "seeds": None if self.seeds is None else list(self.seeds),
            "executor": to_plain(self.executor),
        }

    def recipe(self, name: str) -> RecipeSpec:
        """The recipe entry whose predictor base name is ``name``."""
        for spec in self.recipes:
            if spec.name == name:
                return spec
        raise ConfigError(f"no recipe named '{name}' in this config")


def _parse_data(raw: Any) -> DataConfig:
    if not isinstance(raw, Mapping) or "kind" not in raw:
        raise ConfigError(
            f"data must be a mapping with a 'kind' (one of: {', '.join(DATASETS.names())})"
        )
    entry = DATASETS[str(raw["kind"])]
    own = {f.name for f in dataclasses.fields(entry.config)} if entry.config else set()

    def is_common(key: str, value: Any) -> bool:
        # A loader's own option of the same name (colored_digits' label_noise: 0.25) wins
        # unless the value has the common section's shape (a mapping).
        return key in _DATA_COMMON and not (key in own and not isinstance(value, Mapping))

    common = {k: v for k, v in raw.items() if is_common(k, v)}
    rest = {k: v for k, v in raw.items() if not is_common(k, v)}
    if entry.config is None:
        if rest:
            raise ConfigError(f"unknown key 'data.{next(iter(rest))}' for kind '{entry.name}'")
        options = None
    else:
        if "labels" in rest and "labels" not in {f.name for f in dataclasses.fields(entry.config)}:
            raise ConfigError(
                f"data.labels: {rest['labels']} needs per-rater labels, which kind "
                f"'{entry.name}' does not have (vader does); for synthetic noise with known "
                "truth use data.label_noise: {rate: 0.2}"
            )
        try:
            options = build(entry.config, rest, "data")
        except ConfigError as exc:
            message = str(exc)
            if message.startswith("unknown key"):
                message += f"; common keys: {', '.join(sorted(_DATA_COMMON))}"
            raise ConfigError(message) from None
    data = build(DataConfig, common, "data")
    # A cap of 0 or less would empty every domain: (key, cap, what leaving it out means).
    per_domain = data.max_per_domain
    caps = [
        *(
            [(f"max_per_domain.{k}", v, "leave the domain out") for k, v in per_domain.items()]
            if isinstance(per_domain, Mapping)
            else [("max_per_domain", per_domain, "null for all examples")]
        ),
        ("max_per_ood_domain", data.max_per_ood_domain, "null for max_per_domain"),
    ]
    for key, cap, unset in caps:
        if cap is not None and cap < 1:
            raise ConfigError(f"data.{key} must be >= 1 (or {unset}), got {cap}")
    data.options = options
    return data


def _parse_backbone(raw: Any) -> BackboneConfig:
    if raw is None:
        return BackboneConfig()
    if isinstance(raw, str):
        return BackboneConfig(name=raw)
    return build(BackboneConfig, raw, "backbone")


def _items(raw: Any, section: str) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(raw, list):
        raise ConfigError(f"{section} must be a list, e.g. [zero_shot, {{full_ft: {{epochs: 2}}}}]")
    items = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            items.append((item, {}))
        elif isinstance(item, Mapping) and len(item) == 1:
            ((recipe, options),) = item.items()
            if options is not None and not isinstance(options, Mapping):
                raise ConfigError(f"{section}[{i}].{recipe} must be a mapping of options")
            items.append((str(recipe), dict(options or {})))
        else:
            raise ConfigError(
                f"{section}[{i}] must be a name or {{name: {{options}}}}, got {item!r}"
            )
    return items


def _parse_recipes(raw: Any) -> list[RecipeSpec]:
    specs: list[RecipeSpec] = []
    for recipe, options in _items(list(DEFAULT_RECIPES) if raw is None else raw, "recipes"):
        entry = FINETUNE[recipe]
        name = str(options.pop("name", recipe))
        if any(s.name == name for s in specs):
            raise ConfigError(f"two recipes are named '{name}'; give one a distinct 'name:' option")
        if "@" in name or "[" in name:
            raise ConfigError(
                f"recipe name '{name}' may not hold '@' or '[' (seeds and grids use them)"
            )
        where = f"recipes.{name}"
        config = build(entry.config, options, where) if entry.config is not None else None
        specs.append(RecipeSpec(name=name, recipe=recipe, config=config))
    return specs


def _parse_adapt(raw: Any) -> list[AdaptSpec]:
    specs: list[AdaptSpec] = []
    for adapter, options in _items([] if raw is None else raw, "adapt"):
        entry = ADAPT[adapter]
        name = str(options.pop("name", adapter))
        on = options.pop("on", None)
        if any(s.name == name for s in specs):
            raise ConfigError(f"two adapters are named '{name}'; give one a distinct 'name:'")
        where = f"adapt.{name}"
        on = None if on is None else coerce(on, list[str], f"{where}.on")
        specs.append(AdaptSpec(name, adapter, build(entry.config, options, where), on))
    return specs


def _parse_curate(raw: Any) -> list[CurateSpec]:
    specs: list[CurateSpec] = []
    for action, options in _items([] if raw is None else raw, "curate"):
        entry = CURATE_ACTIONS[action]
        name = str(options.pop("name", action))  # curated sets are told apart by their labels
        specs.append(CurateSpec(name, action, build(entry.config, options, f"curate.{name}")))
    return specs


def _parse_curation(raw: Any) -> CurationConfig:
    cfg = build(CurationConfig, raw, "curation")
    for score, options in cfg.scores.items():
        entry = CURATE[score]
        build(entry.config, options or {}, f"curation.scores.{score}")  # checked now
    if cfg.folds < 2:
        raise ConfigError(f"curation.folds must be >= 2, got {cfg.folds}")
    return cfg


def _parse_capabilities(raw: Any) -> list[CapabilityConfig]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("capabilities must be a list of tasks, each with its own data section")
    found = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or "data" not in item:
            raise ConfigError(f"capabilities[{i}] needs a data section and a task (template, ...)")
        options = {k: v for k, v in item.items() if k != "data"}
        capability = build(CapabilityConfig, options, f"capabilities[{i}]")
        capability.data = _parse_data(item["data"])
        found.append(capability)
    names = [c.name for c in found]
    if len(set(names)) != len(names):
        raise ConfigError("two capabilities share a name; give each its own 'name:'")
    return found


def _parse_conjugate(raw: Any) -> list[ConjugateSpec]:
    specs: list[ConjugateSpec] = []
    for transform, options in _items([] if raw is None else raw, "conjugate"):
        TRANSFORMS[transform]  # an unknown transform is an error now (did-you-mean)
        name = str(options.pop("name", transform))
        on = options.pop("on", None)
        on = None if on is None else coerce(on, list[str], f"conjugate.{name}.on")
        if any(s.name == name for s in specs):
            raise ConfigError(f"two conjugate entries are named '{name}'; give one a 'name:'")
        specs.append(ConjugateSpec(name, transform, dict(options), on))
    return specs


FORGET_KINDS = ("ids", "domain", "class", "curation")


def _parse_unlearn(raw: Any) -> UnlearnConfig | None:
    if raw is None:
        return None
    cfg = build(UnlearnConfig, raw, "unlearn")
    if len(cfg.forget) != 1 or next(iter(cfg.forget)) not in FORGET_KINDS:
        raise ConfigError(
            f"unlearn.forget names one of {', '.join(FORGET_KINDS)}, "
            "e.g. {curation: label_issues}"
        )
    specs = []
    for method, options in _items(cfg.methods, "unlearn.methods"):
        if method != "retrain":
            entry = UNLEARN[method]
            build(entry.config, options, f"unlearn.methods.{method}")  # checked now
        specs.append(UnlearnSpec(method, method, options))
    cfg.methods = specs
    return cfg


def _parse_seeds(raw: Any) -> list[int] | None:
    seeds = coerce(raw, list[int] | None, "seeds")
    if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
        raise ConfigError(f"seeds must be a non-empty list of distinct integers, got {seeds}")
    return seeds


def _parse_executor(raw: Any) -> ExecutorConfig:
    if raw is None:
        return ExecutorConfig()
    if isinstance(raw, str):
        return build(ExecutorConfig, {"kind": raw}, "executor")
    return build(ExecutorConfig, raw, "executor")


def parse(raw: Mapping[str, Any]) -> RunConfig:
    """Validate a raw config mapping and resolve every section to its dataclass."""
    if not isinstance(raw, Mapping):
        raise ConfigError("a run config must be a YAML mapping with at least a 'data:' section")
    known = {
        "data",
        "backbone",
        "prompts",
        "recipes",
        "seed",
        "device",
        "calibrate",
        "report",
        "adapt",
        "curation",
        "curate",
        "task",
        "capabilities",
        "conjugate",
        "precision",
        "seeds",
        "executor",
        "unlearn",
    }
    for key in raw:
        if key not in known:
            hint = closest(str(key), sorted(known))
            more = f"; did you mean '{hint}'?" if hint else ""
            raise ConfigError(f"unknown top-level key '{key}'{more}")
    if "data" not in raw:
        raise ConfigError("the config has no 'data:' section")
    backbone = _parse_backbone(raw.get("backbone"))
    if backbone.name not in BACKBONES and not backbone.name.strip():
        raise ConfigError("backbone.name must not be empty")
    prompts = coerce(raw.get("prompts", ["{class_name}"]), list[str], "prompts")
    for prompt in prompts:
        if "{class_name}" not in prompt:
            raise ConfigError(f"prompt {prompt!r} must contain '{{class_name}}'")
    return RunConfig(
        data=_parse_data(raw["data"]),
        backbone=backbone,
        prompts=prompts,
        recipes=_parse_recipes(raw.get("recipes")),
        seed=coerce(raw.get("seed", 0), int, "seed"),
        device=coerce(raw.get("device", "auto"), str, "device"),
        calibrate=coerce(raw.get("calibrate", False), bool, "calibrate"),
        report=build(ReportConfig, raw.get("report"), "report"),
        adapt=_parse_adapt(raw.get("adapt")),
        curation=_parse_curation(raw.get("curation")),
        curate=_parse_curate(raw.get("curate")),
        task=None if raw.get("task") is None else build(TaskConfig, raw["task"], "task"),
        capabilities=_parse_capabilities(raw.get("capabilities")),
        conjugate=_parse_conjugate(raw.get("conjugate")),
        precision=coerce(
            raw.get("precision", "auto"), Literal["auto", "fp32", "bf16", "fp16"], "precision"
        ),
        seeds=_parse_seeds(raw.get("seeds")),
        executor=_parse_executor(raw.get("executor")),
        unlearn=_parse_unlearn(raw.get("unlearn")),
    )


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
    value = read_yaml(text) if text.strip() else ""
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
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a YAML mapping")
    for assignment in overrides or []:
        apply_override(raw, assignment)
    return parse(raw)


__all__ = [
    "AdaptSpec",
    "BackboneConfig",
    "CorruptionsConfig",
    "DataConfig",
    "NoOptions",
    "RecipeSpec",
    "ReportConfig",
    "RunConfig",
    "SplitConfig",
    "build",
    "load",
    "param",
    "parse",
    "ref",
    "to_plain",
]
