"""Held stages: the stem and the early stages of a pretrained timm body stay at their ImageNet weights for the whole fit
(`freeze_stride`). Edges and textures transfer as they are, and no gradient flows back through the stages that run at
the finest strides, which cost most of a convnet's backward pass: EfficientNet-Lite0's whole-model epochs at 192 px on 2
CPU cores took 84 s with its stride-8 stages held against 140, at the same accuracy (docs/benchmarks.md)."""
from fastai.callback.core import Callback

from ..errors import PaddyError


def stages(model) -> list[tuple[str, int]]:
    "A timm model's stages, as (module name, stride) from its `feature_info`; none for a model without."
    return [(f['module'], f['reduction']) for f in getattr(model, 'feature_info', None) or []]


def held_params(model, stride: int, name: str = '') -> list:
    """The parameters of `model` (a timm body) from its first module to the end of its last stage whose stride is at
    most `stride`, in the order the model registers them, which timm's convnets run in."""
    st = stages(model)
    within = [m for m, r in st if r <= stride]
    strides = ', '.join(str(r) for r in dict.fromkeys(r for _, r in st))
    if not st: raise PaddyError(f"{name}: freeze_stride needs a timm arch with stages (its feature_info); set it to 0")
    if not within or within[-1] == st[-1][0]:
        raise PaddyError(f"{name}: freeze_stride={stride} holds {'none' if not within else 'all'} of the arch's stages "
                         f"(their strides: {strides}); choose a stride between, e.g. 8, or 0 for none")
    names = [n for n, _ in model.named_modules()]
    last = max(i for i, n in enumerate(names) if n == within[-1] or n.startswith(within[-1] + '.'))
    return [p for m in list(model.modules())[:last + 1] for p in m.parameters(recurse=False)]


def check(exp):
    "Raise before any data is read where `exp.freeze_stride` cannot hold its arch's stages (built on the meta device)."
    if not exp.freeze_stride: return
    if exp.pretrained is False: raise random_init(exp)
    import timm, torch
    if not timm.is_model(exp.arch):
        raise PaddyError(f"{exp.name}: freeze_stride needs a timm arch with stages; {exp.arch} is not one: set it to 0")
    with torch.device('meta'): model = timm.create_model(exp.arch, pretrained=False, num_classes=0)
    held_params(model, exp.freeze_stride, exp.name)


def body(model):
    "The timm model inside fastai's `vision_learner` model (a Sequential of `TimmBody` and head), or None."
    b = model[0] if len(model) else None
    return getattr(b, 'model', None)


class Held(Callback):
    """Before every fit (fine_tune's frozen one, where fastai keeps BatchNorm training, and the whole-model one, after
    `unfreeze` made everything trainable again) take the held parameters out of training. Their BatchNorm statistics
    still follow the data; the EMA and the checkpoint carry them unchanged."""
    order = -5  # before DDP wraps the model (fastai's DistributedTrainer, order 11), which must see what trains

    def __init__(self, stride: int): self.stride, self.params = stride, None

    def before_fit(self):
        if self.params is None:
            from .ema import unwrapped
            self.params = held_params(body(unwrapped(self.learn.model)), self.stride, 'freeze_stride')
        for p in self.params: p.requires_grad_(False)


def random_init(exp) -> PaddyError:
    return PaddyError(f"{exp.name}: freeze_stride={exp.freeze_stride} holds pretrained stages, but {exp.arch} starts "
                      "from random weights here: set freeze_stride = 0")


def callbacks(exp, pretrained: bool) -> list:
    if exp.freeze_stride and not pretrained: raise random_init(exp)
    return [Held(exp.freeze_stride)] if exp.freeze_stride else []
