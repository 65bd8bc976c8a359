"""The two fastai transforms of the fast item pipeline. They import fastai at the top, so they pickle with an exported
Learner."""
import math, random

import torch
from fastai.vision.all import RandomResizedCropGPU, RandTransform, TensorImage, Transform, store_attr

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


class ScaledCrop(RandomResizedCropGPU):
    """fastai's random crop, resized to `size` (rows, cols), as a share of the largest window of `size`'s aspect: a
    random one of `min_scale` to all of its area in training, so that a rectangle is cropped, not a square squished
    into it, and in validation the centre `valid_scale` of each side, the share a training view keeps on average
    (`train_scale`), so the plain view shows things at the scale the model learnt them, as timm's `crop_pct` does."""
    def before_call(self, b, split_idx):
        self.do = True
        h, w = (b[0] if isinstance(b, tuple) else b).shape[-2:]
        r = self.size[1] / self.size[0]  # read each batch: progressive resizing changes `size`
        H, W = (h, min(w, round(h * r))) if w / h >= r else (min(h, round(w / r)), w)
        s = self.valid_scale if split_idx else math.sqrt(random.uniform(self.min_scale, self.max_scale))
        self.cp_size = rows, cols = max(1, round(H * s)), max(1, round(W * s))
        self.tl = ((h - rows) // 2, (w - cols) // 2) if split_idx else (random.randint(0, h - rows),
                                                                         random.randint(0, w - cols))


MAX_ZOOM, P_AFFINE = 1.1, 0.75  # fastai's `aug_transforms` defaults, which paddy keeps


def train_scale(min_scale: float, max_zoom: float = MAX_ZOOM, p_affine: float = P_AFFINE) -> float:
    """The mean share of each side that a training view keeps: the crop's square root of an area uniform in
    [`min_scale`, 1], times the zoom's 1/z, z uniform in [1, `max_zoom`] on `p_affine` of the images."""
    crop = 1.0 if min_scale >= 1 else 2 / 3 * (1 - min_scale ** 1.5) / (1 - min_scale)
    zoom = 1 - p_affine + p_affine * (math.log(max_zoom) / (max_zoom - 1) if max_zoom > 1 else 1.0)
    return crop * zoom
