"""Checks of a run config against its data and backbone, made before the run directory exists
(each stage runs its own, :mod:`shiftlab.stages`)."""

from __future__ import annotations

from torch import nn

from shiftlab.config.sections import EntrySpec, RunConfig
from shiftlab.data.benchmark import Benchmark
from shiftlab.entries import entry_of, references
from shiftlab.errors import AdaptError, ConfigError
from shiftlab.models import Backbone, Classifier, backbone_kinds
from shiftlab.registry import ADAPT, FINETUNE, UNLEARN, unknown_name_message


def check_references(recipes: list[EntrySpec]) -> dict[str, list[str]]:
    """Every referenced predictor must come from an earlier recipe entry; return the entries
    each recipe depends on.

    Raises:
        ConfigError: a reference names no earlier entry.
    """
    earlier: list[str] = []
    depends: dict[str, list[str]] = {}
    for spec in recipes:
        depends[spec.name] = []
        for name in references(spec.options):
            if entry_of(name) not in earlier:
                have = ", ".join(earlier) or "none"
                raise ConfigError(
                    f"recipe '{spec.name}' uses predictor '{name}', which no recipe before it "
                    f"makes (earlier recipes: {have}); add it to recipes before '{spec.name}'"
                )
            depends[spec.name].append(entry_of(name))
        earlier.append(spec.name)
    return depends


def capabilities(backbone: Backbone) -> set[str]:
    """What a backbone offers recipes (``Entry.kinds`` names these)."""
    found = {backbone.modality, backbone.kind}
    if backbone.has_text_side:
        found.add("text_side")
    return found


def check_recipes(cfg: RunConfig, backbone: Backbone) -> None:
    """Every recipe must be able to work on the backbone (checked before any training).

    Raises:
        ConfigError: a recipe needs what the backbone lacks (e.g. a text side for prompts).
    """
    have = capabilities(backbone)
    why = {
        "text_side": "a text side to encode class prompts (e.g. open_clip or a text model)",
        "causal_lm": "a causal language model (e.g. smollm2-135m-instruct)",
        "encoder": "an encoder backbone (features for a linear head), not a language model",
    }
    for spec in cfg.recipes:
        needs = FINETUNE[spec.kind].kinds
        if needs and not needs & have:  # any one of the listed capabilities will do
            wanted = " or ".join(why.get(n, n) for n in sorted(needs))
            raise ConfigError(
                f"recipe '{spec.name}' needs {wanted}, which backbone '{backbone.name}' lacks; "
                "remove it or choose another backbone"
            )


def check_modality(cfg: RunConfig, benchmark: Benchmark) -> None:
    """The backbone must read the data's inputs (known before it loads).

    Raises:
        ConfigError: text data for an image model, images for a text model, or image files for
            a backbone that reads arrays only, naming backbones that fit; LiT options on
            another backbone.
    """
    reads = backbone_kinds(cfg.backbone)
    name = cfg.backbone.name
    if (cfg.backbone.pairs is not None or cfg.backbone.lit is not None) and (
        name.split(":")[0] != "lit"
    ):
        raise ConfigError(
            f"backbone.pairs and backbone.lit configure a lit backbone; '{name}' is not one"
        )
    if benchmark.modality == "text" and "text" not in reads:
        raise ConfigError(
            f"backbone '{name}' reads images, but data '{cfg.data.kind}' is text; use a text "
            "backbone: minilm, smollm2-135m-instruct, or a Hugging Face folder or model id"
        )
    if benchmark.modality == "image" and not reads & {"image", "image_arrays"}:
        raise ConfigError(
            f"backbone '{name}' reads text, but data '{cfg.data.kind}' is images; use an image "
            "backbone: efficientnet_lite0, timm:<model> or open_clip:<arch>"
        )
    files = benchmark.modality == "image" and benchmark.input_shape is None
    if files and "image" not in reads:
        raise ConfigError(
            f"backbone '{name}' reads image arrays (digits, colored_digits), not image files; "
            "use efficientnet_lite0, timm:<model> or open_clip:<arch> for image folders"
        )


def check_data_needs(cfg: RunConfig, benchmark: Benchmark) -> None:
    """What recipes need of the data, before a model loads: groups (a group-robust objective,
    group-balanced sampling, selection by worst-group accuracy), the unlabeled pool, or
    annotations of reliable features with the data's regions.

    Raises:
        ConfigError: such a recipe in a run whose data lacks what it needs.
    """
    annotations = benchmark.train.annotations
    annotated = annotations is not None and bool((annotations != "").any())
    for spec in cfg.recipes:
        needs = set(FINETUNE[spec.kind].needs)
        if getattr(spec.options, "balanced", False):
            needs.add("groups")
        if getattr(spec.options, "select", None) == "id_val_worst_group_accuracy":
            needs.add("val_groups")
        split = {"groups": benchmark.train, "val_groups": benchmark.val}
        for need, where in split.items():
            if need in needs and where.groups is None:
                raise ConfigError(
                    f"recipe '{spec.name}' needs groups in ID {where.name.replace('id_', '')}, "
                    f"which data '{cfg.data.kind}' lacks: set data.groups (label_x_domain, "
                    "label_x_<attribute>) or a group column"
                    + ("; or select: id_val_accuracy" if need == "val_groups" else "")
                )
        if getattr(spec.options, "data", None) == "clean" and benchmark.train.poisoned is None:
            raise ConfigError(
                f"recipe '{spec.name}' (data: clean) trains on the training split less its "
                "poisoned examples, but the data is not poisoned: set data.poison, or data: train"
            )
        if "annotations" in needs and not (annotated and benchmark.regions):
            raise ConfigError(
                f"recipe '{spec.name}' learns from annotations of each example's reliable "
                f"features, which data '{cfg.data.kind}' lacks (a 'reliable' attribute naming "
                "regions on some training examples, and the regions; see "
                "kind: contextual_reliability)"
            )
        if "unlabeled" in needs and benchmark.unlabeled is None:
            raise ConfigError(
                f"recipe '{spec.name}' learns from unlabeled data, but the run has no pool; add "
                "data.unlabeled: {domains: [DOMAIN], fraction: 0.5} (a share of each domain "
                "whose labels are dropped)"
            )


def check_language_model(cfg: RunConfig) -> None:
    """A language model needs a task; tasks, capabilities and conjugate prompts need one
    (checked from the config alone, before the model loads).

    Raises:
        ConfigError: a mismatch between the backbone and the config's LM sections.
    """
    name = cfg.backbone.name
    if "causal_lm" in backbone_kinds(cfg.backbone):
        if cfg.task is None:
            raise ConfigError(
                f"backbone '{name}' is a language model: add a task: section (template "
                "and label_words, or an answer_column in the data)"
            )
        if cfg.adapt:
            raise ConfigError(
                "test-time adapters (adapt:) apply to classifiers, not language models"
            )
        return
    for section in ("task", "capabilities", "conjugate"):
        if getattr(cfg, section):
            raise ConfigError(
                f"{section}: applies to language models, but backbone '{name}' is a "
                "classifier's encoder; use e.g. backbone: smollm2-135m-instruct"
            )


def check_unlearning(cfg: RunConfig, backbone: Backbone, trains: list[str]) -> str | None:
    """The recipe entry whose predictor is unlearned (``unlearn.on``, default the first that
    trains); every method must suit the backbone.

    Raises:
        ConfigError: ``on`` names no training entry, or a method is for the other kind of model.
    """
    if cfg.unlearn is None:
        return None
    on = cfg.unlearn.on or (trains[0] if trains else None)
    if on not in trains:
        raise ConfigError(
            unknown_name_message("predictor to unlearn", str(on), trains).replace(
                "(known:", "(entries that train:"
            )
        )
    have = capabilities(backbone)
    for spec in cfg.unlearn.methods:
        needs = UNLEARN[spec.kind].kinds if spec.kind != "retrain" else frozenset()
        if needs and not needs & have:
            kind = "language models" if "causal_lm" in needs else "classifiers"
            model = "a language model" if backbone.kind == "causal_lm" else "an encoder"
            raise ConfigError(
                f"unlearning method '{spec.kind}' is for {kind}; backbone '{backbone.name}' "
                f"is {model}"
            )
    return on


def check_curation(cfg: RunConfig) -> list[str]:
    """The recipe entries retrained on curated sets (default: every entry that trains on the
    ID split itself, i.e. not zero_shot and not one that consumes other models).

    Raises:
        ConfigError: ``retrain`` or ``scorer`` names no suitable entry.
    """
    specs = {spec.name: spec for spec in cfg.recipes}
    trains = [
        name
        for name, spec in specs.items()
        if spec.kind != "zero_shot" and not references(spec.options)
    ]
    curation = cfg.curation
    if curation.scorer != "linear_probe" and curation.scorer not in trains:
        raise ConfigError(
            unknown_name_message("curation scorer", curation.scorer, ["linear_probe", *trains])
        )
    chosen = trains if curation.retrain is None else curation.retrain
    for name in chosen:
        if name not in trains:
            raise ConfigError(
                unknown_name_message("recipe to retrain", name, trains).replace(
                    "(known:", "(entries that train:"
                )
            )
    return list(chosen) if cfg.curate else []


def check_adapters(cfg: RunConfig, backbone: Backbone) -> None:
    """Every adapter must name predictors some recipe makes, and be able to work on the
    backbone (checked before any training).

    Raises:
        ConfigError: ``on`` names a predictor no recipe makes.
        AdaptError: an adapter cannot adapt this backbone (e.g. no normalisation layers).
    """
    entries = [spec.name for spec in cfg.recipes]
    for spec in cfg.adapt:
        for name in spec.on or []:
            if entry_of(name) not in entries:
                raise ConfigError(
                    unknown_name_message("predictor", name, entries).replace("(known:", "(recipes:")
                    + f" in adapt.{spec.name}.on"
                )
        probe = Classifier(backbone.featurizer, nn.Linear(1, 1))
        try:
            ADAPT[spec.kind].obj(probe, spec.options)
        except AdaptError as exc:
            raise AdaptError(
                f"adapter '{spec.name}' cannot adapt backbone '{backbone.name}': {exc}"
            ) from None
