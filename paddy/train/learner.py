"""The Learner: resolve an arch to timm or torchvision, check it can take the spec, build it with its speed-ups."""
import difflib
from functools import lru_cache, partial

from ..errors import PaddyError
from ..spec import Experiment, hw, validate
from .smoothing import loss


def _torchvision(arch: str):
    import torchvision.models as tvm
    fn = getattr(tvm, arch, None)
    return fn if callable(fn) and arch[:1].islower() and not isinstance(fn, type(tvm)) else None


@lru_cache
def _all_names() -> list[str]:
    import timm
    return sorted(set(timm.list_models()) | set(timm.list_pretrained()))


def check_arch(exp: Experiment):
    "Raise when `exp.arch` is unknown, has no such pretrained tag, or cannot take `exp.aug_size`."
    import timm
    if not timm.is_model(exp.arch):
        if _torchvision(exp.arch): return
        close = difflib.get_close_matches(exp.arch, _all_names(), n=4, cutoff=0.6)
        raise PaddyError(f"{exp.name}: unknown arch '{exp.arch}'"
                         + (f"; close matches: {', '.join(close)}" if close else "; see timm.list_models('pattern*')"))
    try: cfg = timm.models.get_pretrained_cfg(exp.arch)
    except RuntimeError: cfg = None  # timm raises for a tag its arch does not have
    if '.' in exp.arch and cfg is None:
        tags = timm.list_pretrained(exp.arch.split('.')[0] + '.*')
        raise PaddyError(f"{exp.name}: timm has no pretrained tag '{exp.arch}'; it has {', '.join(tags) or 'none'}")
    sizes = exp.aug_sizes or (exp.aug_size,)
    if cfg is not None and cfg.fixed_input_size and any(hw(s) != tuple(cfg.input_size[1:]) for s in sizes):
        (h, w), key = cfg.input_size[1:], 'aug_sizes' if exp.aug_sizes else 'aug_size'
        got = ', '.join('×'.join(map(str, hw(s))) for s in sizes)
        raise PaddyError(f"{exp.name}: {exp.arch} only takes {h}×{w} input but {key} is {got}: set aug_size = "
                         f"{h if h == w else (h, w)}" + (" and aug_sizes = ()" if exp.aug_sizes else ''))


def check_experiment(exp: Experiment) -> list[str]:
    """Raise on a spec that cannot train (its fields, or an arch that cannot take them); return warnings for one that
    trains badly."""
    from .compiled import check_compile
    from .held import check
    msgs = validate(exp)
    check_arch(exp)
    check_compile(exp)
    check(exp)
    return msgs


def adamw():
    """fastai's Adam (decoupled weight decay, betas 0.9/0.99, eps 1e-5) as PyTorch's AdamW behind fastai's
    `OptimWrapper`: one fused kernel a step on CUDA, where fastai's per-tensor Python step left the GPU waiting
    (docs/benchmarks.md)."""
    import torch
    from fastai.optimizer import OptimWrapper
    cuda = torch.cuda.is_available()
    return partial(OptimWrapper, opt=torch.optim.AdamW, betas=(0.9, 0.99), eps=1e-5, fused=cuda or None,
                   foreach=None if cuda else True)


def learner(dls, exp: Experiment, weights, cbs=(), **kwargs):
    """A fastai `vision_learner` for `exp` on `dls`, with `weights` from `paddy.weights.resolve`, that reads no loss
    back to the host while it trains (`syncs.without_host_reads`); `kwargs` go to `vision_learner`."""
    import timm
    from fastai.vision.all import AccumMetric, error_rate, vision_learner
    from .syncs import without_host_reads
    arch = exp.arch if timm.is_model(exp.arch) else _torchvision(exp.arch)
    # accumulated, not averaged per batch: across processes fastai then gathers the predictions and drops the padding
    # its DistributedDL adds, so the epoch table's error is that of the validation set itself
    kwargs = {"opt_func": adamw(), "metrics": AccumMetric(error_rate, flatten=False), **kwargs}
    kwargs.update(loss(dls, exp))
    return without_host_reads(vision_learner(dls, arch, pretrained=weights.pretrained, cbs=list(cbs),
                                             **weights.kwargs, **kwargs))


def precision(name: str = 'auto') -> str:
    "`auto` is bf16 on a CUDA card that has it, fp16 on an older one, fp32 without CUDA."
    import torch
    if name not in PRECISIONS: raise PaddyError(f"--precision {name}: choose one of {', '.join(PRECISIONS)}")
    if not torch.cuda.is_available(): return 'fp32'
    if name == 'auto': return 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
    if name == 'bf16' and not torch.cuda.is_bf16_supported():
        raise PaddyError("--precision bf16: this GPU has no bf16; use fp16")
    return name


PRECISIONS = ('auto', 'bf16', 'fp16', 'fp32')


def speedups(learn, dtype: str, channels_last: bool):
    """Mixed precision in `dtype` (bf16 or fp16; fp32 is none) and, on CUDA, channels_last memory format, which
    convnets' cuDNN kernels run fastest in."""
    import torch
    from fastai.callback.channelslast import ChannelsLast
    from fastai.callback.fp16 import AMPMode, MixedPrecision
    if dtype != 'fp32': learn.add_cb(MixedPrecision(amp_mode=AMPMode.BF16 if dtype == 'bf16' else AMPMode.FP16))
    if channels_last and torch.cuda.is_available(): learn.add_cb(ChannelsLast())
    return learn
