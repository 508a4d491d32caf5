"""Image backbones: real EfficientNet-Lite0 weights, timm and open_clip through shiftlab."""

import math

import pytest
import torch
import torch.nn.functional as F

from shiftlab.config.sections import BackboneConfig
from shiftlab.errors import BackboneError
from shiftlab.features import encode
from shiftlab.models import load_backbone


def test_efficientnet_lite0_weights_are_the_real_imagenet_model():
    """matplotlib's photo of Grace Hopper in uniform: the original model's top classes are
    military uniform / academic gown / mortarboard; random or misloaded weights give noise."""
    from matplotlib import cbook
    from PIL import Image
    from timm.data import ImageNetInfo

    from shiftlab.models.efficientnet_lite0 import imagenet_model
    from shiftlab.models.timm_backbone import image_transform

    model = imagenet_model()
    transform = image_transform(model, None, False)
    assert transform.size == 224 and transform.mean == (0.5, 0.5, 0.5)
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        image = Image.open(handle).convert("RGB")
    with torch.no_grad():
        probs = model(transform.pil(image)[None]).softmax(1)[0]
    top5 = [ImageNetInfo().index_to_description(int(i)) for i in probs.topk(5).indices]
    wanted = ("military uniform", "academic gown", "mortarboard", "suit", "Windsor tie")
    assert any(w in name for name in top5 for w in wanted), top5
    assert float(probs.max()) > 0.2  # a confident prediction, not a flat distribution


def test_efficientnet_lite0_backbone_gives_1280_d_features():
    backbone = load_backbone(BackboneConfig(name="efficientnet_lite0", image_size=64), "cpu")
    assert backbone.featurizer.dim == 1280 and not backbone.has_text_side
    assert backbone.featurizer.transform.size == 64
    out = backbone.featurizer(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 1280)


def test_unknown_timm_name_suggests_the_closest():
    with pytest.raises(BackboneError, match="did you mean 'timm:resnet18'"):
        load_backbone(BackboneConfig(name="timm:resnet_18", pretrained=False), "cpu")


def test_timm_loads_a_local_weights_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    source = timm.create_model("test_efficientnet", pretrained=False, num_classes=5)
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    cfg = BackboneConfig(name="timm:test_efficientnet", pretrained=str(tmp_path / "w.safetensors"))
    backbone = load_backbone(cfg, "cpu")
    features = {k: v for k, v in source.state_dict().items() if not k.startswith("classifier")}
    for key, value in backbone.featurizer.model.state_dict().items():
        torch.testing.assert_close(value, features[key])
    with pytest.raises(BackboneError, match="weights file not found"):
        load_backbone(BackboneConfig(name="timm:test_efficientnet", pretrained="missing.pt"), "cpu")


def test_image_files_decode_through_the_backbone_transform(tiny_image_benchmark, timm_backbone):
    split = tiny_image_benchmark.ood[0]
    features = encode(timm_backbone.featurizer, split.inputs, batch_size=8)
    again = encode(timm_backbone.featurizer, split.inputs, batch_size=5)
    assert features.shape == (len(split), timm_backbone.featurizer.dim)
    torch.testing.assert_close(features, again)  # order and batching do not matter


def test_open_clip_zero_shot_head_is_the_mean_of_normalised_prompt_embeddings(
    clip_backbone, make_context, tiny_image_benchmark
):
    prompts = ["a photo of a {class_name}.", "a sketch of a {class_name}."]
    ctx = make_context(tiny_image_benchmark, clip_backbone, prompts=prompts)
    head = ctx.zero_shot_head()
    model = clip_backbone.featurizer.model
    tokenizer = clip_backbone.featurizer.tokenizer
    scale = float(model.logit_scale.detach().exp())
    assert clip_backbone.logit_scale == pytest.approx(scale)
    with torch.no_grad():
        for k, name in enumerate(tiny_image_benchmark.class_names):
            raw = model.encode_text(tokenizer([p.format(class_name=name) for p in prompts]))
            mean = (raw / raw.norm(dim=1, keepdim=True)).mean(dim=0)
            expected = scale * mean / mean.norm()
            torch.testing.assert_close(head.weight[k], expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(head.bias, torch.zeros(len(tiny_image_benchmark.class_names)))


def test_flyp_loss_on_open_clip_is_the_clip_contrastive_loss(clip_backbone):
    from open_clip.loss import ClipLoss

    from shiftlab.finetune.flyp import clip_loss

    featurizer = clip_backbone.featurizer
    torch.manual_seed(0)
    images = torch.randn(4, 3, 32, 32)
    prompts = ["a dog.", "a guitar.", "a house.", "a dog."]
    with torch.no_grad():
        a, b = featurizer(images), featurizer.encode_prompts(prompts)
        log_scale = featurizer.model.logit_scale
        ours = float(clip_loss(a, b, log_scale))
        # by hand: mean over rows of both directions' cross-entropy, halved
        s = float(log_scale.exp())
        ia = featurizer.model.encode_image(images)
        tb = featurizer.model.encode_text(featurizer.tokenizer(prompts))
        ia, tb = ia / ia.norm(dim=1, keepdim=True), tb / tb.norm(dim=1, keepdim=True)
        total = 0.0
        for i in range(4):
            row = [s * float(ia[i] @ tb[j]) for j in range(4)]
            col = [s * float(tb[i] @ ia[j]) for j in range(4)]
            for logits in (row, col):
                total += (math.log(sum(math.exp(v) for v in logits)) - logits[i]) / 2
        reference = float(ClipLoss()(a, b, log_scale.exp()))  # open_clip's, used by FLYP
    assert ours == pytest.approx(total / 4, rel=1e-5)
    assert ours == pytest.approx(reference, rel=1e-5)


def test_tent_on_efficientnet_updates_exactly_the_batchnorm_affine_parameters():
    from shiftlab.adapt import create
    from shiftlab.models.classifier import Classifier

    backbone = load_backbone(BackboneConfig(name="efficientnet_lite0", image_size=64), "cpu")
    model = Classifier(backbone.featurizer, torch.nn.Linear(1280, 7)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapter = create("tent", model)
    adapter(torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    after = adapter.model.state_dict()
    changed = {k for k in before if "running" not in k and not torch.equal(before[k], after[k])}
    norms = {
        f"{name}.{p}"
        for name, module in adapter.model.named_modules()
        if isinstance(module, torch.nn.BatchNorm2d)
        for p in ("weight", "bias")
    }
    assert changed == norms and len(norms) > 40  # every BN scale and shift, nothing else
    assert adapter.model.training  # no dropout in eval: TENT's train mode


def test_arrays_of_grey_digits_become_rgb_at_the_backbone_size(timm_backbone):
    transform = timm_backbone.featurizer.transform
    grey = torch.rand(2, 1, 16, 16)
    out = transform.array(grey)
    assert out.shape == (2, 3, 32, 32)
    mean = torch.tensor(transform.mean).view(1, 3, 1, 1)
    std = torch.tensor(transform.std).view(1, 3, 1, 1)
    pixels = out * std + mean  # undo the normalisation: three equal channels, resized
    torch.testing.assert_close(pixels[:, 0], pixels[:, 1])
    torch.testing.assert_close(pixels[:, 1], pixels[:, 2])
    resized = F.interpolate(grey, size=(32, 32), mode="bilinear", antialias=True)[:, 0]
    torch.testing.assert_close(pixels[:, 0], resized, atol=1e-5, rtol=0)
