"""How batches reach the device. fastai copies each batch with a blocking copy, which makes the host wait until the GPU
has finished all it was given; here the copy is queued instead. When the item-transformed training images fit in a
share of the GPU's free memory, they are held there as uint8 and each batch is indexed on the GPU: no loader workers,
no pinned copies, no host-to-device traffic per batch (docs/speed.md)."""
import contextlib, sys

import numpy as np
import torch
from fastai.data.core import TfmdDL
from fastai.data.load import _loaders
from fastai.torch_core import TensorCategory, TensorImage, to_device

from . import cache as C
from .tfms import CropTensor

SHARE = 0.25  # of the GPU's free memory: 7.7 GB of 640×480 training images on an 80–141 GB card, never a T4's 16 GB


class AsyncDL(TfmdDL):
    """fastai's `TfmdDL` whose batches reach the device without making the host wait for the training step before.

    - The copy to the device is queued (`non_blocking`): from pinned memory it runs beside the GPU's work.
    - On CUDA, a batch is copied (or gathered) and augmented on a side stream. fastai's augmentation reads a value back
      two or three times a batch (docs/benchmarks.md); on the side stream that read waits for this batch's own few
      kernels, not for the previous batch's backward pass still queued on the training stream."""
    def __iter__(self):
        # fastai 2.8's DataLoader.__iter__, with the copy queued and the batch made on the side stream
        self.randomize()
        self.before_iter()
        self._DataLoader__idxs = self.get_idxs()  # drawn in the main process, as fastai does
        cuda = self.device is not None and torch.device(self.device).type == 'cuda'
        side = torch.cuda.Stream(self.device) if cuda else None
        batches = iter(_loaders[self.fake_l.num_workers == 0](self.fake_l))
        while True:
            with torch.cuda.stream(side) if side else contextlib.nullcontext():
                b = next(batches, None)
                if b is None: break
                if self.pin_memory and type(b) is list: b = tuple(b)
                if self.device is not None: b = to_device(b, self.device, non_blocking=True)
                b = self.after_batch(b)
            if side: b = _handed_over(b, side)
            yield b
        self.after_iter()
        if hasattr(self, 'it'): del self.it


def _handed_over(b, side):
    """`b`, made on the `side` stream, for the training stream: that stream waits for the side stream's work so far, and
    the caching allocator keeps `b`'s memory until the training stream is done with it."""
    main = torch.cuda.current_stream(side.device)
    main.wait_stream(side)
    for t in (b if isinstance(b, (tuple, list)) else (b,)):
        if isinstance(t, torch.Tensor): t.record_stream(main)
    return b


class ResidentDL(AsyncDL):
    """The training loader over images held on the device (`pixels`, with each item's `targets`): fastai's sampler
    draws the order, and each batch is gathered there, through the same item and batch transforms as on the host."""
    pixels: torch.Tensor
    targets: list
    crop = None  # the experiment's `CropTensor`, whose random window is drawn per image, as on the host

    def create_batches(self, samps):
        order = torch.tensor(list(samps), device=self.pixels.device)  # one copy an epoch, not one a batch
        n = len(order)
        for i in range(0, n - n % self.bs if self.drop_last else n, self.bs):
            idx = order[i:i + self.bs]
            x = self.pixels.index_select(0, idx)
            if self.crop is not None: x = torch.stack([self.crop(TensorImage(xi), split_idx=0) for xi in x])
            yield (TensorImage(x), *(TensorCategory(t.index_select(0, idx)) for t in self.targets))

    def new(self, dataset=None, cls=None, **kwargs):
        "A loader like this one on the host: an exported Learner, or `test_dl`, never carries the images."
        return super().new(dataset, cls or AsyncDL, **kwargs)


def resident(dl: TfmdDL, store: C.Cache, device, share: float = SHARE) -> tuple[TfmdDL, str, str | None]:
    """`dl` as a `ResidentDL` on `device` when its images are all in `store`, of one shape, and (on CUDA) fit `share`
    of the free memory; else `dl`. Also where its images live ('gpu', 'cpu' or 'host') and why not on the device."""
    device = torch.device(device)
    where = 'gpu' if device.type == 'cuda' else 'cpu'
    index = [store.index.get(str(f)) for f in dl.dataset.items]
    if None in index: return dl, 'host', 'the item cache does not hold every training image'
    spans = store.spans[index]
    if len({tuple(s) for s in spans[:, 1:]}) > 1:
        return dl, 'host', 'the training images differ in shape once item-transformed (crop of mixed orientations)'
    c, h, w = (int(v) for v in spans[0, 1:])
    need = len(index) * c * h * w
    if device.type == 'cuda':
        free = torch.cuda.mem_get_info(device)[0]
        if need > share * free:
            return dl, 'host', f'{C.gb(need)} of training images is over {share:.0%} of the GPU\'s {C.gb(free)} free'
    pixels = torch.empty((len(index), c, h, w), dtype=torch.uint8, device=device)
    _fill(pixels, store, spans[:, 0], where)
    out = dl.new(cls=ResidentDL, num_workers=0, pin_memory=False, device=device)
    out.pixels, out.targets = pixels, _targets(dl.dataset, device)
    crops = [f for f in dl.after_item.fs if isinstance(f, CropTensor)]
    out.crop = crops[0] if crops else None
    return out, where, None


def _fill(pixels: torch.Tensor, store: C.Cache, offsets: np.ndarray, where: str, chunk: int = 256):
    "Copy the images at `offsets` of `store`'s memory map into `pixels`, `chunk` at a time, with a progress bar."
    from tqdm.auto import tqdm
    size = int(np.prod(pixels.shape[1:]))
    bar = tqdm(total=len(offsets), desc=f'item cache → {where}', unit='img', leave=False, file=sys.stderr,
               disable=None)
    for s in range(0, len(offsets), chunk):
        part = np.stack([store.pixels[o:o + size] for o in offsets[s:s + chunk]]).reshape(-1, *pixels.shape[1:])
        pixels[s:s + len(part)].copy_(torch.from_numpy(part))
        bar.update(len(part))
    bar.close()


def _targets(ds, device) -> list[torch.Tensor]:
    "Each target of every item of `ds` (a fastai `Datasets`), encoded as its loader gives them, as one tensor each."
    return [torch.stack([torch.as_tensor(tl[i]) for i in range(len(tl))]).to(device) for tl in ds.tls[ds.n_inp:]]
