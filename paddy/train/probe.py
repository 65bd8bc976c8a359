"""A few training steps of an experiment's model on random batches, at two sizes: how much longer an image takes at the
larger one. Pixels alone misjudge it: held stages (`freeze_stride`) save more at a large size than a small one, and a
step's fixed costs weigh more at a small one (EfficientNet-Lite0 held to stride 8 on 2 CPU cores: 3.4 times the
seconds an epoch from 96 to 192 px, where pixels to the power 1.1 said 4.6; docs/benchmarks.md)."""
import time
from functools import lru_cache

from ..spec import Experiment, final_size, hw

STEPS, WARMUP = 5, 2
# paddy's Learner spends a time on each image beside its training step: the item pipeline, the batch transforms, the EMA
# and fastai's loop. Lite0 held to stride 8 on 2 CPU cores trained at about 72 img/s at 96 px and 26.5 at 192 px where
# its bare step ran at 134 and 31: 6.4 and 5.5 ms an image more (docs/benchmarks.md)
LEARNER_S_PER_IMAGE = 0.006


def step_images_per_s(arch: str, freeze_stride: int, bs: int, size, steps: int = STEPS) -> float:
    "Images a second of the fastest of `steps` training steps of `arch` (random init, its held stages held) at `size`."
    import timm, torch
    from .held import held_params
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=10).to(dev).train()
    for p in held_params(model, freeze_stride, arch) if freeze_stride else []: p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(bs, 3, *hw(size), device=dev)
    y = torch.randint(0, 10, (bs,), device=dev)
    took = []
    for _ in range(WARMUP + steps):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev == 'cuda': torch.cuda.synchronize()
        took.append(time.perf_counter() - t0)
    return bs / min(took[WARMUP:])  # the fastest step: what the work costs, not what another process took meanwhile


@lru_cache
def _slowdown(arch: str, freeze_stride: int, bs: int, small, large) -> float:
    print(f"probing {arch}'s training step at {small} and {large} (rows, cols), bs {bs}", flush=True)
    return step_images_per_s(arch, freeze_stride, bs, small) / step_images_per_s(arch, freeze_stride, bs, large)


def slowdown(small: Experiment, large: Experiment) -> float | None:
    """How many times the seconds an image of `large` takes a training step against one of `small`, measured once per
    arch, held stages, batch size and pair of sizes (both at the larger batch size of the two); None where the arch is
    not timm's or the two differ in either."""
    import timm
    if (small.arch, small.freeze_stride) != (large.arch, large.freeze_stride) or not timm.is_model(small.arch):
        return None
    a, b = final_size(small), final_size(large)
    return _slowdown(small.arch, small.freeze_stride, max(small.bs, large.bs), hw(a), hw(b))


@lru_cache
def _rate(arch: str, freeze_stride: int, bs: int, size) -> float:
    return step_images_per_s(arch, freeze_stride, bs, size)  # quiet: a refused budget says one line, after it


def learner_images_per_s(exp: Experiment) -> float | None:
    """Images a second that paddy's Learner should train `exp` at on this CPU before any run has: its bare training
    step, probed, and `LEARNER_S_PER_IMAGE`; None where the arch is not timm's or a GPU is here, whose epochs the item
    pipeline often bounds rather than the step."""
    import timm, torch
    if torch.cuda.is_available() or not timm.is_model(exp.arch): return None
    return 1 / (1 / _rate(exp.arch, exp.freeze_stride, exp.bs, hw(final_size(exp))) + LEARNER_S_PER_IMAGE)
