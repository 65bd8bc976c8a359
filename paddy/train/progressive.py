"""Progressive resizing: train small, then larger (Jeremy Howard's step after Road to the Top). `aug_sizes` are spread
evenly over the epochs, rectangles allowed, which fastxtend's `ProgressiveResize` refuses; the batch transforms end at
the last size, which TTA and the export keep."""
from fastai.callback.core import Callback

from ..spec import hw
from .loop import run_epoch


def set_size(dls, size):
    "Make every loader's batch transforms (fastai's GPU crop and affine resize) output `size` (rows, cols)."
    from fastai.vision.augment import AffineCoordTfm, RandomResizedCropGPU
    for dl in dls.loaders:
        for t in dl.after_batch.fs:
            # an affine transform without a size of its own leaves the size to the crop after it
            if isinstance(t, (AffineCoordTfm, RandomResizedCropGPU)) and t.size is not None: t.size = hw(size)


class Progressive(Callback):
    "Set the size of `sizes` that each epoch's share of the run falls in, and record the batch shape each epoch had."
    def __init__(self, sizes, epochs: int, pretrained: bool):
        self.sizes, self.epochs, self.pretrained, self.shapes = [hw(s) for s in sizes], epochs, pretrained, {}

    def size_at(self, epoch: int) -> tuple[int, int]:
        "The size of the run's `epoch`: fine_tune's frozen epoch takes the first, the whole-model epochs their share."
        k = max(0, epoch - int(self.pretrained)) * len(self.sizes) // self.epochs
        return self.sizes[min(k, len(self.sizes) - 1)]

    def before_epoch(self): set_size(self.dls, self.size_at(run_epoch(self.learn)))
    def before_batch(self):
        if self.training: self.shapes.setdefault(run_epoch(self.learn), list(self.x.shape[-2:]))
    def after_fit(self): set_size(self.dls, self.sizes[-1])  # a stop mid-run leaves no small size for TTA either

    def saved(self) -> dict: return dict(shapes=self.shapes)
    def load_saved(self, state: dict, learn): self.shapes = {int(k): v for k, v in state['shapes'].items()}
    def record(self) -> list: return [self.shapes.get(e) for e in range(self.epochs + int(self.pretrained))]


def callbacks(exp, pretrained: bool) -> list:
    return [Progressive(exp.aug_sizes, exp.epochs, pretrained)] if exp.aug_sizes else []
