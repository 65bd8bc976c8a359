"""Memory preflight: measure the peak GPU memory of a few real training steps at the experiment's sizes, raising `accum`
(1, 2, 4, …, the effective batch kept) until it fits a budget, as Road to the Top's third part did by hand."""
import gc
from dataclasses import replace

from ..data import dataloaders
from ..errors import PaddyError
from ..spec import Experiment
from .learner import learner, speedups


def candidates(exp: Experiment) -> list[int]:
    "`accum` values to try: 1, then doubling, while they still divide the batch (the spec's own guess is not trusted)."
    out, a = [], 1
    while a <= exp.bs and exp.bs % a == 0: out.append(a); a *= 2
    return out


def choose(exp: Experiment, budget_gb: float, measure) -> tuple[int, float, list[tuple[int, float]]]:
    "The smallest `accum` whose peak, as `measure(exp)` gives it in GB, fits `budget_gb`; with every try."
    if budget_gb <= 0:
        raise PaddyError(f"--fit-memory {budget_gb}: give the GPU memory to fit in, in GB, e.g. --fit-memory 16")
    tried = []
    for a in candidates(exp):
        peak = float(measure(replace(exp, accum=a)))
        tried.append((a, round(peak, 2)))
        print(f'preflight: accum {a} (micro-batch {exp.bs // a}): peak {peak:.1f} GB of {budget_gb:g}')
        if peak <= budget_gb: return a, peak, tried
    raise PaddyError(f"{exp.name}: even accum {tried[-1][0]} (micro-batch {exp.bs // tried[-1][0]}) peaks at "
                     f"{tried[-1][1]:.1f} GB, over "
                     f"--fit-memory {budget_gb:g}: lower aug_size, or choose a smaller arch")


def peak_gb(exp: Experiment, df, valid, weights, precision: str, channels_last: bool, cache: bool = True,
            steps: int = 3) -> float:
    """Peak CUDA memory in GB of `steps` real training steps of `exp` unfrozen (fine_tune's hungrier phase) at its
    micro-batch."""
    import torch
    from fastai.callback.core import Callback, CancelFitException

    class Steps(Callback):
        def after_batch(self):
            if self.iter + 1 >= steps: raise CancelFitException

    bs = exp.bs // exp.accum
    # the model's own needs: images held on the GPU are for a card with room to spare, and uploading them for every try
    # would take longer than the steps
    dls = dataloaders(df, exp, valid, bs, cache=cache, pin_memory=True, resident=False)
    learn = speedups(learner(dls, exp, weights), precision, channels_last)
    learn.unfreeze()
    gc.collect(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    try:
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=[Steps()])
        return torch.cuda.max_memory_allocated() / 2**30
    except torch.OutOfMemoryError: return float('inf')
    finally:
        del learn, dls
        gc.collect(); torch.cuda.empty_cache()
