"""The run config's sections as dataclasses: every field declared once, with its default and a
one-line help (``param``), from which parsing (:mod:`shiftlab.config.load`), the resolved
``config.yaml`` (:meth:`RunConfig.to_dict`) and ``shiftlab list config`` are derived.

Naming: a ``*Config`` is a section of a config file; a ``*Options`` is the options dataclass of
a registered method (``@FINETUNE.register("full_ft", options=FullFTOptions)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from shiftlab.errors import ConfigError
from shiftlab.typed import param, to_plain

DEFAULT_RECIPES = ["zero_shot", "linear_probe", "full_ft", "lp_ft", "flyp", "wise_ft"]


def plain(value: Any) -> Any:
    """A section's value in its YAML form: ``to_dict()`` where it has one, else plain values."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return value.to_dict()
    return to_plain(value)


@dataclass
class SplitConfig:
    """Fractions of each ID domain that go to train, val and test (stratified by label)."""

    train: float = param(0.6, "fraction of each ID domain used for training", within="(0, 1]")
    val: float = param(
        0.2, "fraction used for ID validation (model selection, calibration)", within="(0, 1]"
    )
    test: float = param(0.2, "fraction used for the ID test", within="(0, 1]")

    def __post_init__(self) -> None:
        if self.train + self.val + self.test > 1 + 1e-9:
            raise ConfigError("data.split fractions train + val + test must not exceed 1")


@dataclass
class CorruptionsConfig:
    """Corrupted copies of the ID test split, as extra OOD splits (image benchmarks)."""

    types: list[str] | None = param(
        None, "corruptions to apply; default every one", nonempty=True, unique=True
    )
    severities: list[int] = param(
        [1, 2, 3, 4, 5],
        "severities, 1 (mild) to 5 (strong)",
        within="[1, 5]",
        nonempty=True,
        unique=True,
    )
    per_split: int | None = param(
        None, "examples per corrupted split (stratified); default all", within="[1, inf)"
    )


@dataclass
class LabelNoiseConfig:
    """Synthetic label noise on the ID domains (:mod:`shiftlab.data.label_noise`)."""

    rate: float = param(
        0.2, "fraction of each ID domain's labels made wrong (exactly)", within="[0, 1)"
    )
    kind: Literal["symmetric", "pair"] = param("symmetric", "symmetric or pair (k -> k + 1)")
    seed: int = param(0, "seed of which labels flip and to what", within="[0, 4294967295]")


@dataclass
class PoisonConfig:
    """A backdoor in the training data (:mod:`shiftlab.data.poison`, after CleanCLIP's
    ``backdoor/create_backdoor_data.py``): a seeded fraction of the training examples get a
    trigger and the target class (and its caption); a ``triggered`` split of the non-target ID
    test examples with the trigger measures the attack success rate (``asr``)."""

    target: str = param("", "the class (name) poisoned examples are relabelled to")
    fraction: float = param(0.05, "share of the training examples poisoned", within="(0, 1)")
    trigger: Literal["auto", "random", "blended", "token"] = param(
        "auto",
        "random: a noise patch at a random place (BadNet, the reference's default); blended: "
        "0.8 image + 0.2 uniform noise; token: a rare word inserted (text); auto: random for "
        "images, token for text",
    )
    token: str = param("cf", "the rare word of the text trigger")
    patch_size: int = param(
        16, "side of the random patch in pixels at 224 (scaled to the image)", within="[1, 224]"
    )
    seed: int | None = param(
        None, "which examples and where the trigger goes; default data.seed", within="[0, inf)"
    )


@dataclass
class UnlabeledConfig:
    """An unlabeled pool: a seeded fraction of each named domain, its labels dropped at load;
    the rest of an OOD (or ID) domain is used as usual."""

    domains: list[str] = param(
        [], "domains the pool is drawn from (OOD, ID, or named only here)", nonempty=True,
        unique=True,
    )  # fmt: skip
    fraction: float = param(
        0.5, "share of each domain (after its cap) in the pool; 1: all of it, none scored",
        within="(0, 1]",
    )  # fmt: skip


@dataclass
class DataConfig:
    """Which benchmark to build: a registered loader, its domains, classes and sizes; every
    other key is the loader's own option (``shiftlab list datasets -v``)."""

    kind: str = param("", "the dataset loader (shiftlab list datasets)")
    id_domains: list[str] | None = param(None, "domains trained on; default the first")
    ood_domains: list[str] | None = param(None, "domains tested under shift; default the rest")
    class_names: list[str] | None = param(None, "names (and order) of the labels")
    split: SplitConfig = param(SplitConfig(), "fractions of each ID domain: train, val, test")
    max_per_domain: int | dict[str, int] | None = param(
        None,
        "stratified cap per domain, or per domain name ({movie: 2000})",
        within="[1, inf)",
        unset="null for all examples",
    )
    max_per_ood_domain: int | None = param(
        None,
        "cap per OOD domain; default max_per_domain",
        within="[1, inf)",
        unset="null for max_per_domain",
    )
    seed: int = param(
        0, "seed of the data split (kept apart from training's)", within="[0, 4294967295]"
    )
    corruptions: CorruptionsConfig | None = param(None, "corrupted copies of ID test as OOD")
    groups: str | None = param(
        None, "groups: label_x_domain, label_x_<attribute>; default the loader's"
    )
    label_noise: LabelNoiseConfig | None = param(None, "synthetic noise on the ID labels")
    unlabeled: UnlabeledConfig | None = param(
        None, "an unlabeled pool from some domains: {domains: [yelp], fraction: 0.5}"
    )
    poison: PoisonConfig | None = param(
        None, "a backdoor: {target: dog, fraction: 0.05, trigger: random}", added_later=True
    )
    options: Any = param(None, "the loader's own options (built from the remaining keys)")

    def to_dict(self) -> dict[str, Any]:
        """Flatten back to the YAML form: common keys plus the loader's options."""
        out = {k: to_plain(v) for k, v in dataclasses.asdict(self).items() if k != "options"}
        out.update(to_plain(self.options) if self.options is not None else {})
        return out


DATA_COMMON = {f.name for f in dataclasses.fields(DataConfig)} - {"options"}


@dataclass
class BackboneConfig:
    """The pretrained featurizer: a registered name (``minilm``, ``efficientnet_lite0``,
    ``timm:<model>``, ``open_clip:<arch>``, ...), or a Hugging Face folder or model id."""

    name: str = param("minilm", "a registered backbone, a prefix:name, or a local folder")
    max_length: int | None = param(
        None, "tokens per text; default the model's own limit", within="[1, inf)"
    )
    batch_size: int | None = param(
        None, "encoding batch; default 32 on CPU, 256 on CUDA", within="[1, inf)"
    )
    logit_scale: float | None = param(
        None, "zero-shot head scale; default the backbone's", within="(0, inf)"
    )
    pretrained: bool | str = param(
        True, "timm: true/false/a weights file; open_clip: a tag or a file"
    )
    image_size: int | None = param(
        None, "input resolution of images; default the model's", within="[8, inf)"
    )
    augment: bool = param(False, "train-time augmentation (timm's training transform)")
    channels_last: bool = param(False, "channels-last memory format (convolutional backbones)")
    gguf_file: str | None = param(None, "causal LMs: a GGUF checkpoint inside the folder")
    pairs: str | None = param(
        None, "lit: an image-text file its projections are tuned on, or train (the ID split)"
    )
    lit: dict[str, Any] | None = param(
        None, "lit: how the projections are tuned (dim, epochs, batch_size, lr, ...)"
    )


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
    shots: int = param(
        0,
        "seeded demonstrations from the task's training split before each prompt",
        within="[0, inf)",
    )
    label_map: Literal["identity", "permuted"] = param(
        "identity",
        "permuted: demonstrations and gold labels use a seeded permutation of the label words",
    )
    separator: str = param("\n\n", "between demonstrations and the query")
    chat: bool = param(False, "wrap each prompt in the model's chat template (a user turn)")
    max_new_tokens: int = param(16, "greedy decoding length of generation tasks", within="[1, inf)")
    seed: int = param(
        0, "seed of the demonstrations and of the label permutation", within="[0, 4294967295]"
    )


@dataclass
class CapabilityConfig(TaskConfig):
    """A task the model never trains on, scored as an OOD split of its own (a capability)."""

    data: Any = param(None, "a data section, as the run's own")
    split: Literal["train", "id_val", "id_test"] = param("id_test", "which split of its data")
    max_examples: int | None = param(
        200, "stratified cap on the examples scored", within="[1, inf)"
    )

    def to_dict(self) -> dict[str, Any]:
        return {**to_plain(self), "data": self.data.to_dict()}


@dataclass
class EntrySpec:
    """One entry of an entry list (``recipes``, ``adapt``, ``curate``, ``conjugate``,
    ``unlearn.methods``), written ``NAME`` or ``{KIND: {name: ..., on: [...], option: ...}}``.

    Attributes:
        name: the entry's name (default its kind): what records, references and ``on:`` use.
        kind: the registered method it runs (a recipe, adapter, action, transform or method).
        options: the method's options dataclass, built when the config is parsed (every
            default filled in); None for a method without options.
        on: the predictors it applies to (adapters, conjugate prompts); None: the default.
        seed: a recipe repeat's seed under ``seeds:`` (None: the run's).
    """

    name: str
    kind: str
    options: Any = None
    on: list[str] | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The YAML form ``{kind: {name: ..., on: [...], option: value}}``."""
        options = to_plain(self.options) or {}
        if self.on is not None:
            options = {"on": list(self.on), **options}
        if self.name != self.kind:
            options = {"name": self.name, **options}
        return {self.kind: options}


@dataclass
class UnlearnConfig:
    """Take training examples back out of a trained model, judged against retraining."""

    forget: dict[str, Any] = param(
        {},
        "what to forget: {ids: FILE or [ids]}, {domain: NAME or [NAMES]}, {class: NAME} or "
        "{curation: SCORE}",
    )
    on: str | None = param(None, "the trained predictor to unlearn; default the first that trains")
    methods: list[EntrySpec] = param(
        ["retrain"], "methods, as recipes are listed (retrain is the reference)"
    )
    knowmem_forget: str | None = param(None, "LMs: the split of questions about the forget set")
    knowmem_retain: str | None = param(None, "LMs: the split of questions about the retain set")
    holdout: str | None = param(None, "LMs: the split of non-member texts (PrivLeak, perplexity)")
    forget_texts: str | None = param(
        None,
        "LMs: the split of forget texts VerbMem and PrivLeak read (the kind the holdout texts "
        "are, e.g. forget_bio); default the whole forget set",
    )
    retain_texts: str | None = param(
        None,
        "LMs: the split of retain texts of that kind (e.g. retain_bio), the other members of "
        "the original model's membership table; default the whole retain set",
    )
    membership_k: float = param(0.4, "k of Min-K% in PrivLeak (MUSE: 0.4)", within="(0, 1]")
    verbmem_prompt_tokens: int = param(
        32,
        "VerbMem: tokens of a forget text given as the prompt (MUSE paper: 32)",
        within="[1, inf)",
    )
    verbmem_new_tokens: int = param(
        128, "VerbMem: tokens generated and compared (MUSE verbmem.py: 128)", within="[1, inf)"
    )
    knowmem_new_tokens: int = param(
        32, "KnowMem: tokens generated per answer (MUSE knowmem.py: 32)", within="[1, inf)"
    )
    knowmem_shots: int = param(
        10,
        "KnowMem: retain question/answer pairs before each question (MUSE: 10)",
        within="[0, inf)",
    )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass
class ExecutorConfig:
    """Where the run's work happens: in this process, or as a graph of Ray tasks."""

    kind: Literal["local", "ray"] = param("local", "local: this process; ray: Ray tasks")
    address: str | None = param(None, "a Ray cluster's address; default a local Ray instance")
    resources: dict[str, float] = param(
        {"num_cpus": 1},
        "Ray resources of every task, e.g. {num_cpus: 4, num_gpus: 1}",
        within="[0, inf)",
    )


@dataclass
class CurationConfig:
    """How curation scores are computed, and which recipes retrain on each curated set."""

    scorer: str = param(
        "linear_probe",
        "out-of-sample probabilities from K-fold linear probes on cached features (no encoder "
        "pass), or a training recipe entry of the run (e.g. full_ft: K fine-tunings, costlier)",
    )
    folds: int = param(5, "K of the stratified, seeded K-fold", within="[2, inf)")
    probe_c: float | Literal["log_loss", "id_val"] = param(
        "log_loss",
        "the linear-probe scorer's C: log_loss, the C whose K-fold probabilities have the "
        "lowest log loss on the training labels (calibrated, as confident learning needs); "
        "id_val, the linear_probe recipe's (best ID val accuracy); or a number",
        within="(0, inf)",
    )
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
class MLflowConfig:
    """Log the run to MLflow: a parent run per run directory, a nested run per entry."""

    uri: str = param(
        "sqlite:///mlruns/mlflow.db",
        "MLflow tracking URI: sqlite:///PATH.db (relative to the working directory), http(s):// "
        "of a tracking server, or file:PATH (an MLflow that still accepts file stores)",
        nonempty=True,
    )
    experiment: str | None = param(
        None, "the MLflow experiment (made when missing); default the run directory's name"
    )


@dataclass
class TrackingConfig:
    """Experiment trackers a run logs to (none by default)."""

    mlflow: MLflowConfig | None = param(
        None, "log to MLflow ({} for the defaults; pip install 'shiftlab[mlflow]')"
    )


@dataclass
class RunConfig:
    """A whole run: benchmark, backbone, class prompts, the entries (recipes, adapters,
    curation, conjugate prompts, unlearning), seeds, device, precision and executor."""

    data: DataConfig = field(metadata={"help": "the benchmark (required; see DataConfig)"})
    backbone: BackboneConfig = param(BackboneConfig(), "the pretrained model (or a name)")
    prompts: list[str] = param(
        ["{class_name}"], "class prompt templates ({class_name})", nonempty=True, unique=True
    )
    recipes: list[EntrySpec] = param([], "recipes, in order; default the six standard ones")
    seed: int = param(
        0, "the run's seed (training; the data split has data.seed)", within="[0, 4294967295]"
    )
    device: str = param("auto", "auto (cuda when available), cpu, cuda, cuda:N, mps")
    calibrate: bool = param(False, "add a temperature-scaled twin of every predictor")
    report: ReportConfig = param(ReportConfig(), "how the report judges robustness")
    adapt: list[EntrySpec] = param([], "test-time adapters on every OOD split")
    curation: CurationConfig = param(CurationConfig(), "how curation scores are computed")
    curate: list[EntrySpec] = param([], "curated training sets to retrain on")
    task: TaskConfig | None = param(None, "a language model's task")
    capabilities: list[CapabilityConfig] = param([], "other tasks a language model is scored on")
    conjugate: list[EntrySpec] = param([], "prompt transforms scored on language models")
    unlearn: UnlearnConfig | None = param(None, "examples to take back out of a trained model")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = param(
        "auto", "auto: bf16 on a GPU that has it, else fp32"
    )
    seeds: list[int] | None = param(
        None,
        "repeat every training recipe once per seed",
        within="[0, 4294967295]",
        nonempty=True,
        unique=True,
    )
    executor: ExecutorConfig = param(ExecutorConfig(), "local, or ray (a graph of Ray tasks)")
    tracking: TrackingConfig = param(
        TrackingConfig(), "experiment tracking: {mlflow: {uri: ..., experiment: ...}}"
    )

    def to_dict(self) -> dict[str, Any]:
        """The resolved config, every default filled in, as written to the run directory."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def recipe(self, name: str) -> EntrySpec:
        """The recipe entry whose predictor base name is ``name``."""
        for spec in self.recipes:
            if spec.name == name:
                return spec
        raise ConfigError(f"no recipe named '{name}' in this config")
