"""Conformance checks: one per method family's contract, as scikit-learn's ``check_estimator``
and DomainBed's one test over every algorithm. Each check runs a registered entry with the
options it declared at registration for speed (``fast=``) and asserts what every member of its
family must do; the test suite runs each check over its whole registry, so a new method is
covered with no edit to any test::

    @pytest.mark.parametrize("name", UNLEARN.names())
    def test_unlearning_method(name):
        check_unlearning_method(name)

The checks that need data or a backbone take them as arguments (the suite passes small real
ones); the others build tiny random models here (:func:`tiny_classifier`, :func:`tiny_causal_lm`,
:func:`tiny_cnn`), which need no download. A check raises ``AssertionError`` on a broken
contract, and :class:`Skip` when the entry cannot run here (a missing optional package, data not
on this machine).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shiftlab.registry import (
    ADAPT,
    AUDITS,
    BACKBONES,
    CURATE,
    CURATE_ACTIONS,
    DATASETS,
    FINETUNE,
    MEMBERSHIP,
    TRANSFORMS,
    UNLEARN,
    Entry,
)
from shiftlab.runtime import seed_everything
from shiftlab.typed import options_of


class Skip(Exception):
    """The entry cannot be checked here (a missing optional package or data folder)."""


def fast_options(entry: Entry[Any], **context: Any) -> dict[str, Any] | None:
    """The options an entry declared for a quick run: its ``fast`` mapping, or what its ``fast``
    factory returns for ``context`` (``workdir``, ``data_dir``); None when it cannot run here."""
    fast = entry.fast
    if callable(fast):
        return fast(**context)
    return copy.deepcopy(dict(fast))


# Tiny random models ---------------------------------------------------------------------


class CharTokenizer:
    """One token per printable ASCII character (ids 3..98), BOS 1, EOS 2 (also the pad): enough
    of a Hugging Face tokenizer for shiftlab's language-model code (encode, decode, length)."""

    bos_token, eos_token = "<s>", "</s>"
    bos_token_id, eos_token_id, pad_token_id = 1, 2, 2
    all_special_ids = (0, 1, 2)
    chat_template = None

    def __len__(self) -> int:
        return 99

    def _id(self, char: str) -> int:
        return 3 + min(max(ord(char) - 32, 0), 95)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = [self._id(c) for c in text]
        return {"input_ids": ([self.bos_token_id] if add_special_tokens else []) + ids}

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        return "".join(chr(int(i) - 3 + 32) for i in ids if int(i) >= 3)

    def batch_decode(self, rows: Any, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(row) for row in rows]


def tiny_causal_lm(seed: int = 0) -> nn.Module:
    """A 2-layer, 32-wide random Llama and :class:`CharTokenizer`, as an ``LMScorer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from shiftlab.lm.scorer import LMScorer

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=99,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return LMScorer(LlamaForCausalLM(config).eval(), CharTokenizer(), max_length=64)


def tiny_classifier(seed: int = 0, dim: int = 8, classes: int = 3) -> nn.Module:
    """A Linear-ReLU featurizer (8 -> 16) and a linear head (16 -> 3), random weights."""
    from shiftlab.models.classifier import Classifier

    torch.manual_seed(seed)
    return Classifier(nn.Sequential(nn.Linear(dim, 16), nn.ReLU()), nn.Linear(16, classes))


def tiny_cnn(seed: int = 0, classes: int = 10) -> nn.Module:
    """A BatchNorm CNN on 1 x 16 x 16 images (for adapters): conv, BN, ReLU, pool, linear."""
    from shiftlab.models.classifier import Classifier

    torch.manual_seed(seed)
    featurizer = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    model = Classifier(featurizer, nn.Linear(8, classes))
    model.train()  # a few steps give the BN layers running statistics of their own
    with torch.no_grad():
        for i in range(3):
            model(image_batch(100 + i))
    return model.eval()


def image_batch(seed: int, size: int = 32) -> torch.Tensor:
    """``size`` random 1 x 16 x 16 images, seeded."""
    return torch.randn(size, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def feature_data(n: int, seed: int, dim: int = 8, classes: int = 3) -> Any:
    """Unlearning data of ``n`` random feature vectors with random labels."""
    from shiftlab.unlearn.base import Data

    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, dim)).astype(np.float32)
    return Data(inputs=inputs, labels=rng.integers(0, classes, size=n))


def qa_data(names: list[str]) -> Any:
    """Unlearning data of a language model: one question per name, answered by it reversed."""
    from shiftlab.unlearn.base import Data

    return Data(
        prompts=[f"Q: who is {name}?\nA:" for name in names],
        answers=[" " + name[::-1] for name in names],
    )


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``model`` holds exactly ``state``."""
    now = model.state_dict()
    return all(torch.equal(now[k].cpu(), v.cpu()) for k, v in state.items())


def finite(model: nn.Module) -> bool:
    """Whether every floating-point entry of the state dict is finite."""
    return all(
        bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point()
    )


# Recipes and adapters -------------------------------------------------------------------


def run_recipe(
    name: str, make_context: Callable[..., Any], predictors: dict[str, Any] | None = None
) -> tuple[list[Any], Any]:
    """Run recipe ``name`` with its fast options (the recipes its references name first, with
    theirs); return its predictors and its context. ``make_context(name, predictors)`` gives a
    :class:`shiftlab.finetune.RecipeContext` over the data and backbone being checked."""
    from shiftlab.entries import references

    entry = FINETUNE[name]
    options = options_of(entry.options, fast_options(entry), f"recipes.{name}")
    known = dict(predictors or {})
    for target in references(options):
        made, _ = run_recipe(target, make_context, known)
        known.update({p.name: p for p in made})
    ctx = make_context(name, known)
    if "unlabeled" in entry.needs and ctx.benchmark.unlabeled is None:
        ctx = dataclasses.replace(ctx, benchmark=with_pool(ctx.benchmark))
    seed_everything(ctx.seed)  # as a run seeds every recipe entry
    return list(entry.obj(ctx, options)), ctx


def with_pool(benchmark: Any) -> Any:
    """``benchmark`` with its last OOD split, labels dropped, as the unlabeled pool (the
    labels answer queries only): for checking recipes that learn from unlabeled data."""
    import numpy as np

    source = benchmark.ood[-1]
    pool = dataclasses.replace(
        source, name="unlabeled", role="unlabeled", labels=np.full(len(source), -1), parent=None
    )
    labels = source.eval_labels.copy()
    return dataclasses.replace(benchmark, unlabeled=pool, pool_oracle=lambda i: labels[i])


def check_recipe(name: str, make_context: Callable[..., Any], backbone: Any) -> None:
    """A recipe makes uniquely named predictors of its own, each scoring every evaluation split
    with finite (N, K) logits; it leaves the pretrained backbone untouched; it is deterministic.

    Raises:
        Skip: the backbone cannot run it (the recipe declares other ``kinds``).
    """
    from shiftlab.checks import capabilities
    from shiftlab.entries import entry_of, references
    from shiftlab.evaluate import predictor_logits
    from shiftlab.models.fingerprint import weights_fingerprint

    entry = FINETUNE[name]
    options = options_of(entry.options, fast_options(entry), f"recipes.{name}")
    for needed in [name, *(entry_of(r) for r in references(options))]:
        kinds = FINETUNE[needed].kinds
        if kinds and not kinds & capabilities(backbone):
            raise Skip(f"{needed} runs on {', '.join(sorted(kinds))}")
    if "annotations" in entry.needs:
        probe = make_context(name, {})
        notes = probe.benchmark.train.annotations
        if probe.benchmark.regions is None or notes is None or not (notes != "").any():
            raise Skip(f"{name} needs annotated regions (contextual_reliability has them)")
    before = weights_fingerprint(backbone.featurizer)
    made, ctx = run_recipe(name, make_context)
    assert made, f"{name} made no predictor"
    names = [p.name for p in made]
    assert len(set(names)) == len(names), f"{name}: predictor names repeat: {names}"
    assert all(n.startswith(name) and p.recipe == name for n, p in zip(names, made, strict=True))
    k = ctx.benchmark.num_classes
    logits = {}
    for p in made:
        for split in ctx.benchmark.eval_splits():
            out = predictor_logits(p, split, ctx.cache)
            assert out.shape == (len(split), k) and torch.isfinite(out).all(), (p.name, split.name)
            logits[p.name, split.name] = out
    assert weights_fingerprint(backbone.featurizer) == before, f"{name} modified the backbone"
    again, ctx2 = run_recipe(name, make_context)
    for p in again:
        for split in ctx.benchmark.eval_splits():
            out = predictor_logits(p, split, ctx2.cache)
            assert torch.equal(out, logits[p.name, split.name]), f"{name} is not deterministic"


def check_adapter(name: str) -> None:
    """An adapter returns finite (B, K) logits, changes only the normalisation layers' affine
    parameters, ``reset()`` restores the model, and the same stream gives the same numbers."""
    from shiftlab.adapt import create
    from shiftlab.adapt.params import NORMS

    model = tiny_cnn()
    adapter = create(name, model, **fast_options(ADAPT[name]))
    start = weights(adapter.model)
    outs = [adapter(image_batch(seed)) for seed in range(3)]
    assert all(o.shape == (32, 10) and torch.isfinite(o).all() for o in outs)
    norms = {
        f"{module_name}.{p}"
        for module_name, m in adapter.model.named_modules()
        if isinstance(m, NORMS)
        for p in ("weight", "bias")
    }
    for key, value in adapter.model.named_parameters():
        if key not in norms:
            assert torch.equal(value, start[key]), f"{name} changed frozen {key}"
    adapter.reset()
    assert same_weights(adapter.model, start), f"{name}: reset() did not restore the model"
    again = create(name, model, **fast_options(ADAPT[name]))
    for seed, out in enumerate(outs):
        assert torch.equal(again(image_batch(seed)), out), f"{name} is not deterministic"


# Curation ---------------------------------------------------------------------------------


def curation_context(benchmark: Any, backbone: Any, cache: Any, seed: int = 0) -> Any:
    """What curation scores see, over cached pretrained features of ``benchmark``."""
    from shiftlab.curation.context import CurationContext
    from shiftlab.curation.oof import out_of_sample_probabilities

    def features(split: Any) -> torch.Tensor:
        return cache.get(backbone.featurizer, split, backbone.fingerprint)

    def out_of_sample() -> np.ndarray:
        train, k = benchmark.train, benchmark.num_classes
        return out_of_sample_probabilities(
            features(train).numpy(), train.labels, k, folds=3, seed=seed, c=1.0
        )

    return CurationContext(
        benchmark,
        features,
        out_of_sample,
        seed,
        torch.device("cpu"),
        featurizer=backbone.featurizer,
    )


def curation_scores(names: list[str], ctx: Any) -> dict[str, Any]:
    """Scores by name, each with its fast options."""
    return {
        n: CURATE[n].obj(ctx, options_of(CURATE[n].options, fast_options(CURATE[n]), n))
        for n in names
    }


def check_curation_score(name: str, benchmark: Any, backbone: Any, cache: Any) -> None:
    """A curation score gives every training example one finite value, says what high means,
    flags (bool) and suggests labels (valid classes) only with the right shapes, and is
    deterministic.

    Raises:
        Skip: the score reads image captions (T-MARS, CLIP score) and the benchmark has none.
    """
    if "captions" in CURATE[name].needs and getattr(benchmark.train, "captions", None) is None:
        raise Skip(f"{name} scores image-caption pairs; the benchmark has no captions")
    ctx = curation_context(benchmark, backbone, cache)
    result = curation_scores([name], ctx)[name]
    n = len(benchmark.train)
    assert result.values.shape == (n,) and np.isfinite(result.values).all()
    assert result.meaning, f"{name} does not say what its values mean"
    if result.flagged is not None:
        assert result.flagged.shape == (n,) and result.flagged.dtype == bool
    if result.suggested is not None:
        assert result.suggested.shape == (n,)
        assert set(np.unique(result.suggested)) <= set(range(benchmark.num_classes))
    json.dumps(result.summary)
    again = curation_scores([name], curation_context(benchmark, backbone, cache))[name]
    np.testing.assert_array_equal(again.values, result.values)


def check_curation_action(name: str, benchmark: Any, backbone: Any, cache: Any) -> None:
    """A curation action makes curated sets of the training split's own examples (a subset,
    or the same examples relabelled with valid classes), each labelled after the action, with
    JSON-able record info, the same sets every time."""
    entry = CURATE_ACTIONS[name]
    options = options_of(entry.options, fast_options(entry), f"curate.{name}")
    train = benchmark.train
    ctx = curation_context(benchmark, backbone, cache)
    scores = curation_scores(options.needs(), ctx)
    variants = list(entry.obj(scores, train, options, 0))
    assert variants, f"{name} made no curated set"
    ids = set(np.asarray(train.ids).astype(str))
    for variant in variants:
        assert variant.label.startswith(name) and variant.action == name
        kept = np.asarray(variant.train.ids).astype(str)
        assert set(kept) <= ids and len(set(kept)) == len(kept)
        assert variant.n_removed == len(train) - len(variant.train)
        assert set(np.unique(variant.train.labels)) <= set(range(benchmark.num_classes))
        json.dumps(variant.info())
    again = list(entry.obj(scores, train, options, 0))
    assert [list(v.train.ids) for v in again] == [list(v.train.ids) for v in variants]


# Unlearning, membership, audits, transforms ---------------------------------------------


FORGET_NAMES = ["ada", "bob", "cyd", "dee", "eve", "fay"]
RETAIN_NAMES = ["gus", "hal", "ivy", "jon", "kai", "lea", "max", "ned"]


def unlearning_sets(kind: str) -> tuple[Any, Any]:
    """A small forget set and retain set of the kind's data."""
    if kind == "causal_lm":
        return qa_data(FORGET_NAMES), qa_data(RETAIN_NAMES)
    return feature_data(12, seed=1), feature_data(40, seed=2)


def check_unlearning_method(name: str) -> None:
    """For every model kind it declares: an unlearning method returns a finite copy in eval
    mode that differs from the model, leaves the model untouched (weights and mode), gives the
    same copy twice, and refuses a set it reads when empty and a model of another kind."""
    from shiftlab.errors import ConfigError, DataError
    from shiftlab.unlearn.base import Data, unlearn

    entry = UNLEARN[name]
    assert entry.kinds, f"{name} declares no model kind"
    for kind in sorted(entry.kinds):
        model = tiny_causal_lm() if kind == "causal_lm" else tiny_classifier()
        forget, retain = unlearning_sets(kind)
        before, mode = weights(model), model.training
        out = unlearn(name, model, forget, retain, fast_options(entry), seed=0)
        assert out is not model and not out.training, f"{name}: not a copy in eval mode"
        assert same_weights(model, before) and model.training == mode, f"{name} changed its input"
        assert finite(out), f"{name} made a non-finite weight"
        assert not same_weights(out, before), f"{name} changed nothing"
        assert all(p.requires_grad for p in out.parameters()), f"{name} left weights frozen"
        again = unlearn(name, model, forget, retain, fast_options(entry), seed=0)
        assert same_weights(again, weights(out)), f"{name} is not deterministic"
        empty = Data(prompts=[], answers=[]) if kind == "causal_lm" else Data(inputs=[], labels=[])
        built = options_of(entry.options, fast_options(entry), name)
        method = entry.obj(built, name=name, kind=kind, seed=0, device=torch.device("cpu"))
        for i, reads in enumerate(method.uses()):
            sets = [forget, retain]
            sets[i] = empty
            try:
                unlearn(name, model, *sets, fast_options(entry), seed=0)
            except DataError:
                assert reads, f"{name} refused an empty set it does not read"
            else:
                assert not reads, f"{name} accepted an empty {['forget', 'retain'][i]} set"
        for other in {"encoder", "causal_lm"} - set(entry.kinds):
            stranger = tiny_causal_lm() if other == "causal_lm" else tiny_classifier()
            try:
                unlearn(name, stranger, *unlearning_sets(other), fast_options(entry), seed=0)
            except ConfigError:
                pass
            else:
                raise AssertionError(f"{name} accepted a model of kind {other}")


MEMBERSHIP_TEXTS = [
    f"Person {i} was born in {1950 + 7 * i} in {city} and works as a {job}."
    for i, (city, job) in enumerate(
        zip(
            ["Oslo", "Lima", "Cork", "Kyiv", "Baku", "Riga", "Nice", "Bonn"],
            ["baker", "pilot", "nurse", "judge", "poet", "tailor", "miner", "clerk"],
            strict=True,
        )
    )
]


def check_membership_score(name: str) -> None:
    """A membership score gives each text one finite number, the same twice, and ranks the
    texts a model was just fitted on above texts it never saw (AUROC above 0.5)."""
    from shiftlab.membership import attack_metrics, score
    from shiftlab.training import Batch, TrainOptions, train
    from shiftlab.unlearn.base import Data

    reference = tiny_causal_lm(seed=1)
    scorer = tiny_causal_lm(seed=1)
    members, others = MEMBERSHIP_TEXTS[:4], MEMBERSHIP_TEXTS[4:]
    data = Data(prompts=[t[:10] for t in members], answers=[t[10:] for t in members])

    def loss_fn(batch: Batch) -> torch.Tensor:
        from shiftlab.lm.answer_loss import answer_loss, answer_only_batch

        index = batch.index
        encoded = answer_only_batch(
            scorer.tokenizer,
            [data.prompts[i] for i in index],
            [data.answers[i] for i in index],
            max_length=128,
        )
        return answer_loss(scorer.model, encoded)

    options = TrainOptions(epochs=30, lr=3e-3, batch_size=4, warmup_steps=0, weight_decay=0.0)
    train(scorer, loss_fn, list(range(4)), np.zeros(4, dtype=np.int64), options, seed=0,
          device=torch.device("cpu"), description=f"membership.{name}")  # fmt: skip
    scorer.eval()
    k = fast_options(MEMBERSHIP[name]).get("k", 0.2)
    extra = {"reference": reference.model} if "reference" in MEMBERSHIP[name].needs else {}
    texts = members + others
    values = score(scorer.model, scorer.tokenizer, texts, name, k=k, **extra)
    assert np.asarray(values).shape == (len(texts),) and np.isfinite(values).all()
    again = score(scorer.model, scorer.tokenizer, texts, name, k=k, **extra)
    np.testing.assert_allclose(again, values, rtol=0, atol=1e-6)
    truth = np.r_[np.ones(len(members)), np.zeros(len(others))].astype(bool)
    assert attack_metrics(values, truth)["auroc"] > 0.5, f"{name} does not rank members higher"


def check_audit(name: str) -> None:
    """An audit method stays within its pass budget; success means greedy decoding of the input
    found gives the target; it finds a target the model readily says after some input; the same
    seed gives the same input."""
    from shiftlab.lm.audit import run_audit
    from shiftlab.lm.audit.common import Problem, greedy_decode

    scorer = tiny_causal_lm(seed=3)
    model, tokenizer = scorer.model, scorer.tokenizer
    head, allowed = torch.tensor([tokenizer.bos_token_id]), torch.ones(99, dtype=torch.bool)
    target = ""
    for word in ("abc", "xyz", "q r", "hi!"):  # an output the model gives after a 3-token input
        problem = Problem(model, head, torch.tensor([5]), 3, allowed)
        said = greedy_decode(problem, torch.tensor([tokenizer._id(c) for c in word]))
        target = tokenizer.decode(said)
        if target.strip():
            break
    options = fast_options(AUDITS[name])
    budget = options.pop("budget", 600)

    def search() -> Any:
        return run_audit(
            name, model, tokenizer, target, input_length=3, budget=budget, seed=0,
            options=options, forbidden=[],
        )  # fmt: skip

    result = search()
    assert result.passes <= budget, f"{name} overspent its budget"
    assert result.success == (result.output_ids == result.target_ids)
    assert result.success, f"{name} did not find an output the model readily gives ({target!r})"
    assert search().input_ids == result.input_ids, f"{name} is not deterministic"


LABEL_WORDS = [" positive", " negative", " neutral", " yes", " no"]


def check_transform(name: str) -> None:
    """A prompt transform changes text, maps label words back with its inverse, and maps a
    list as it maps each item."""
    from shiftlab.lm.transforms import make_transform

    transform = make_transform(name, fast_options(TRANSFORMS[name]))
    text = "Review: a quiet film about a long winter.\nSentiment:"
    assert transform.forward(text) != text, f"{name} leaves prompts as they are"
    words = LABEL_WORDS
    assert [transform.inverse(transform.forward(w)) for w in words] == words
    assert transform.forward_all(words) == [transform.forward(w) for w in words]


# Datasets and backbones -----------------------------------------------------------------


def check_dataset(name: str, data_dir: Path | None = None) -> None:
    """A dataset loader's fast options load: named classes (unique), every domain's labels are
    valid classes for its inputs, ids (where given) are unique, fixed splits name domains.

    Raises:
        Skip: its data or an optional package is not on this machine.
    """
    from shiftlab.errors import MissingExtraError

    entry = DATASETS[name]
    with tempfile.TemporaryDirectory() as workdir:
        options = fast_options(entry, workdir=Path(workdir), data_dir=data_dir)
        if options is None:
            raise Skip(f"{name}: its data is not on this machine")
        built = options_of(entry.options, options, f"data.{name}")
        try:
            loaded = entry.obj(built, None)
            domains = {k: (v() if callable(v) else v) for k, v in loaded.domains.items()}
        except MissingExtraError as exc:
            raise Skip(str(exc)) from None
    assert loaded.class_names and len(set(loaded.class_names)) == len(loaded.class_names)
    assert loaded.modality in ("text", "image")
    assert domains, f"{name} loaded no domain"
    for domain, data in domains.items():
        assert len(data.inputs) == len(data.labels) > 0, f"{name}: domain {domain} is empty"
        assert set(np.unique(data.labels)) <= set(range(len(loaded.class_names)))
        if data.ids is not None:
            assert len(set(np.asarray(data.ids).astype(str))) == len(data), f"{domain}: ids repeat"
    for role, domain in (loaded.fixed_splits or {}).items():
        assert role in ("train", "id_val", "id_test") and domain in domains


def check_backbone(name: str, workdir: Path | None = None) -> None:
    """A backbone's fast config loads a featurizer that maps a few inputs of its modality to
    finite features (or a language model to finite label-word scores), with a fingerprint that
    names its weights; its deep copies are independent models.

    Raises:
        Skip: it needs a download, data or an optional package this machine lacks.
    """
    from shiftlab.config.sections import BackboneConfig
    from shiftlab.errors import BackboneError, MissingExtraError
    from shiftlab.models import load_backbone

    entry = BACKBONES[name]
    with tempfile.TemporaryDirectory() as scratch:
        options = fast_options(entry, workdir=Path(workdir or scratch))
        if options is None:
            raise Skip(f"{name}: cannot be loaded on this machine")
        shape = options.pop("input_shape", None)
        config = options_of(BackboneConfig, {"name": name, **options}, "backbone")
        try:
            backbone = load_backbone(config, torch.device("cpu"), seed=0, input_shape=shape)
        except (MissingExtraError, BackboneError) as exc:
            raise Skip(str(exc)) from None
    assert backbone.kind in ("encoder", "causal_lm") and backbone.modality in ("text", "image")
    assert isinstance(backbone.fingerprint, str) and backbone.fingerprint
    featurizer = backbone.featurizer
    if backbone.kind == "causal_lm":
        from shiftlab.lm.tasks import PromptItem

        items = [PromptItem(f"Review {i}: fine.\nSentiment:", (" good", " bad"), " good")
                 for i in range(3)]  # fmt: skip
        with torch.no_grad():
            out = featurizer(items)
        assert out.shape == (3, 2) and torch.isfinite(out).all()
    else:
        from shiftlab.data.batches import input_transform, iterate

        if backbone.modality == "text":
            inputs: Any = ["a fine film.", "a dull one.", "no opinion at all."]
        else:
            size = config.image_size or 32
            channels, height, width = shape or (3, size, size)
            inputs = np.random.default_rng(0).random((3, channels, height, width))
            inputs = inputs.astype(np.float32)
        batch = next(iter(iterate(inputs, [np.arange(3)], transform=input_transform(featurizer),
                                  device=torch.device("cpu"))))  # fmt: skip
        with torch.no_grad():
            out = featurizer.eval()(batch)
        assert out.ndim == 2 and out.shape[0] == 3 and torch.isfinite(out).all()
    twin = copy.deepcopy(featurizer)
    first = next(twin.parameters())
    with torch.no_grad():
        first.add_(1.0)
    assert not torch.equal(first, next(featurizer.parameters())), "copies share weights"


def options_round_trip(entry: Entry[Any]) -> None:
    """An entry's options dataclass has a default for every field and a help text for each
    (``shiftlab list -v`` and docs/methods.md show them), and every number in it a range."""
    if entry.options is None:
        return
    built = entry.options()
    for f in dataclasses.fields(built):
        assert f.metadata.get("help") or dataclasses.is_dataclass(getattr(built, f.name)), (
            f"{entry.name}.{f.name} has no help text"
        )
    unranged = unranged_numbers(entry.options)
    assert not unranged, f"{entry.name}: numbers without a range (param within=): {unranged}"


def unranged_numbers(cls: type, where: str = "", skip: frozenset[str] = frozenset()) -> list[str]:
    """Fields of dataclass ``cls`` (and of the dataclasses inside it) that hold a number but
    declare no range, own or inherited: the values :func:`shiftlab.typed.build` cannot check."""
    import typing

    from shiftlab.typed import constraints

    found = []
    for f in dataclasses.fields(cls):
        path = f"{where}{f.name}"
        if path in skip:
            continue
        tp = typing.get_type_hints(cls)[f.name]
        parts = {tp, *typing.get_args(tp)}
        parts |= {inner for part in list(parts) for inner in typing.get_args(part)}
        if parts & {int, float} and "within" not in constraints(cls, f.name):
            found.append(path)
        for part in parts:
            if dataclasses.is_dataclass(part) and part is not cls:
                found += unranged_numbers(part, f"{path}.", skip)
    return found


def fast_is_valid(entry: Entry[Any]) -> None:
    """An entry's fast options build (unknown keys or bad values would break its check);
    backbones' build a backbone config, in their own check."""
    if callable(entry.fast) or entry.options is None:
        return
    options_of(entry.options, dict(entry.fast) or None, f"{entry.name}.fast")


__all__ = [
    "CharTokenizer",
    "Skip",
    "check_adapter",
    "check_audit",
    "check_backbone",
    "check_curation_action",
    "check_curation_score",
    "check_dataset",
    "check_membership_score",
    "check_recipe",
    "check_transform",
    "check_unlearning_method",
    "fast_is_valid",
    "fast_options",
    "options_round_trip",
    "run_recipe",
    "tiny_causal_lm",
    "tiny_classifier",
    "tiny_cnn",
    "unranged_numbers",
]
