"""MixUp and CutMix as timm's fine-tuning recipe uses them: one λ a batch, CutMix or MixUp by `mix_switch`, none in the
last `mix_off_epochs`. fastai's own callbacks mix the first target only (CutMix) or lerp integer labels when the loss
has no `y_int` (MixUp), so a variety head's second target would come out wrong: here every target takes the same
permutation and λ, and the loss, not the labels, is mixed."""
import random

import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.layers import NoneReduce

from .loop import run_epoch


class Mix(Callback):
    """Mix each training batch with a shuffled copy of itself; the loss is `λ·loss(y) + (1-λ)·loss(y[perm])` for every
    target the loss takes. Validation, TTA and prediction never pass through it (`run_valid = False`, and it is only
    added for the fit)."""
    run_valid = False

    def __init__(self, mixup: float = 0., cutmix: float = 0., switch: float = 0.5, off_from: int | None = None):
        self.switch, self.off_from = switch, off_from
        # λ, the kind and the box are drawn on the host, from the generators fastai's `set_seed` seeds: one read from
        # the device would cost a sync every batch
        self.alphas = {k: a for k, a in (('mixup', mixup), ('cutmix', cutmix)) if a}
        self.lam = None

    def before_train(self): self.old_lf, self.learn.loss_func = self.learn.loss_func, self.lf
    def after_train(self): self.learn.loss_func = self.old_lf
    def after_cancel_train(self): self.after_train()
    def after_cancel_fit(self):
        if self.learn.loss_func == self.lf: self.after_train()

    def kind(self) -> str | None:
        "This batch's mixing: 'cutmix', 'mixup' or None (the last epochs, or nothing on)."
        if self.off_from is not None and run_epoch(self.learn) >= self.off_from: return None
        if len(self.alphas) == 2: return 'cutmix' if random.random() < self.switch else 'mixup'
        return next(iter(self.alphas), None)

    def before_batch(self):
        kind, self.lam = self.kind(), None
        if kind is None: return
        x, a = self.x, self.alphas[kind]
        lam, perm = float(np.random.beta(a, a)), torch.randperm(x.shape[0], device=x.device)
        self.yb1 = tuple(y[perm] for y in self.yb)
        if kind == 'mixup': x = torch.lerp(x[perm], x, lam)
        else:
            (t, b, l, r), (h, w) = box(x.shape[-2:], lam), x.shape[-2:]
            x = x.clone()
            x[..., t:b, l:r] = x[perm, ..., t:b, l:r]  # only the box's pixels are gathered
            lam = 1 - (b - t) * (r - l) / (h * w)  # the share of the image that stayed, once the box is clipped
        self.learn.xb, self.lam = (x, *self.xb[1:]), lam

    def lf(self, pred, *yb):
        "The loss of `pred` against both sets of targets, weighted by λ, then reduced as the loss itself reduces."
        if not self.training or self.lam is None: return self.old_lf(pred, *yb)
        with NoneReduce(self.old_lf) as lf: loss = torch.lerp(lf(pred, *self.yb1), lf(pred, *yb), self.lam)
        red = getattr(self.old_lf, 'reduction', 'mean')
        return loss.mean() if red == 'mean' else loss.sum() if red == 'sum' else loss


def box(hw, lam: float) -> tuple[int, int, int, int]:
    "CutMix's box (top, bottom, left, right) covering about `1-lam` of an image of `hw` (rows, cols), centred anywhere."
    h, w = hw
    cut = (1 - lam) ** 0.5
    ch, cw = round(h * cut), round(w * cut)
    cy, cx = random.randrange(h), random.randrange(w)
    return max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)


def callbacks(exp, pretrained: bool) -> list:
    "A `Mix` for `exp`'s mixup/cutmix, or none."
    if not (exp.mixup or exp.cutmix): return []
    off = exp.epochs + int(pretrained) - exp.mix_off_epochs if exp.mix_off_epochs else None
    return [Mix(exp.mixup, exp.cutmix, exp.mix_switch, off)]
