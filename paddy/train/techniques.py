"""The techniques an experiment switches on, as the fastai callbacks that train them, one module each; label smoothing
lives in the loss (smoothing.py). They are added for the fit alone, so validation, TTA and the export never see them."""
from . import ema, held, mixing, progressive


def callbacks(exp, pretrained: bool) -> list:
    "The callbacks of `exp`'s techniques, for a run that starts from pretrained weights or not."
    return [*mixing.callbacks(exp, pretrained), *ema.callbacks(exp), *progressive.callbacks(exp, pretrained),
            *held.callbacks(exp, pretrained)]


def find(cbs, cls):
    "The callback of type `cls` among `cbs`, or None."
    return next((cb for cb in cbs if isinstance(cb, cls)), None)
