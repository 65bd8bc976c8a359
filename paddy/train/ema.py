"""An EMA of the weights and BatchNorm statistics: timm's `ModelEmaV3`, one fused lerp over the state dict after each
optimizer step, with its warm-up, so that a fine-tune of a few hundred steps averages its own recent steps rather than
the weights it started from (0.9998 with no warm-up keeps 73% of the start after 1,500 steps)."""

from fastai.callback.core import Callback

WARMUP_POWER = 3 / 4  # timm's advice for runs of well under a million steps: decay 0.999 after 10K steps


def unwrapped(model):
    "The module under a DDP wrapper, which `--processes` puts around the model while it fits."
    return getattr(model, 'module', model) if type(model).__name__ == 'DistributedDataParallel' else model


class EMA(Callback):
    """Keep `decay`'s average of the model beside it, through fine_tune's frozen and unfrozen fits; `copy_to` puts it
    in the model. Its state rides in each epoch's checkpoint (`saved`, `load_saved`), so `--resume` goes on with it."""
    def __init__(self, decay: float): self.decay, self.average, self.steps, self.skipped = decay, None, 0, False

    def _start(self, model):
        from timm.utils.model_ema import ModelEmaV3
        from .compiled import plain
        with plain(unwrapped(model)) as m:  # the copy must not share the model's compiled call
            self.average = ModelEmaV3(m, decay=self.decay, use_warmup=True, warmup_power=WARMUP_POWER)

    def before_fit(self):
        if self.average is None: self._start(self.learn.model)
    def after_cancel_step(self): self.skipped = True  # gradient accumulation's micro-batches step nothing
    def after_step(self):
        if self.skipped: self.skipped = False
        else:
            self.steps += 1
            self.average.update(unwrapped(self.learn.model), step=self.steps)

    def decay_now(self) -> float: return self.average.get_decay(self.steps) if self.average else 0.0
    def saved(self) -> dict: return dict(model=self.average.module.state_dict(), steps=self.steps)
    def load_saved(self, state: dict, learn):
        if self.average is None: self._start(learn.model)
        self.average.module.load_state_dict(state['model'])
        self.steps = state['steps']

    def copy_to(self, model):
        "Load the averaged weights and statistics into `model`."
        unwrapped(model).load_state_dict(self.average.module.state_dict())


def callbacks(exp) -> list: return [EMA(exp.ema)] if exp.ema else []
