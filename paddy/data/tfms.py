"""The two fastai transforms of the fast item pipeline. They import fastai at the top, so they pickle with an exported
Learner."""
import random

import torch
from fastai.vision.all import RandTransform, TensorImage, Transform, store_attr

from . import cache as C


class CachedImage(Transform):
    """Path → (3, rows, cols) uint8 `TensorImage`, read from `cache` when it holds the file, else decoded and
    transformed now."""
    def __init__(self, item: C.Item, cache: C.Cache | None = None): store_attr()
    def encodes(self, fn):
        a = self.cache.get(fn) if self.cache is not None else None
        return TensorImage(torch.from_numpy(C.decode(fn, self.item) if a is None else a))


class CropTensor(RandTransform):
    "A `size` (rows, cols) window of a cover-sized image: random in training, centred in validation, as fastai's crop."
    split_idx, order = None, 1
    def __init__(self, size): store_attr(); super().__init__()
    def before_call(self, b, split_idx): self.pcts = (0.5, 0.5) if split_idx else (random.random(), random.random())
    def encodes(self, x: TensorImage):
        (h, w), (H, W) = self.size, x.shape[-2:]
        t, l = int(self.pcts[0] * (H - h)), int(self.pcts[1] * (W - w))
        return x[..., t:t + h, l:l + w]
