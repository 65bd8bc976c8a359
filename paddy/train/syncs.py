"""Training without per-batch host syncs, and a way to find them. Reading a GPU value on the host (`.item()`, `.cpu()`)
makes the CPU wait until the GPU has finished everything queued; then it cannot queue the next batch's copy,
augmentation and kernel launches while the GPU computes, and the GPU idles in between (docs/benchmarks.md).

fastai reads the loss back every batch twice: `AvgSmoothLoss` detaches it to the CPU, and `ProgressCallback` prints it
with `.item()`. Here the smooth loss stays on the device, the recorder's losses come to the host once an epoch, and
the bar shows the loss of a batch or two before, copied in the background."""
import collections, contextlib, sys, traceback
from pathlib import Path

import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback as FastaiProgress
from fastai.learner import AvgSmoothLoss, Recorder
from fastai.torch_core import to_detach


class DeviceSmoothLoss(AvgSmoothLoss):
    "fastai's smooth loss, kept where the loss is: the same value, gathered across processes as fastai's, never read."
    def accumulate(self, learn):
        self.count += 1
        loss = to_detach(learn.loss.mean(), cpu=False)
        self.val = torch.lerp(loss, self.val.to(loss.device), self.beta)


class HostLosses(Callback):
    """Puts `Recorder` on `DeviceSmoothLoss` and brings each epoch's recorded losses to the host in one copy, after the
    training phase: `learn.recorder.losses` reads as with fastai's own."""
    order = Recorder.order + 1
    def before_fit(self):
        rec = self.learn.recorder
        if not isinstance(rec.smooth_loss, DeviceSmoothLoss):
            rec.smooth_loss = DeviceSmoothLoss(rec.smooth_loss.beta)
            rec.smooth_loss.reset()
    def before_train(self): self.start = len(self.recorder.losses)
    def after_train(self):
        new = self.recorder.losses[self.start:]
        if new: self.recorder.losses[self.start:] = list(torch.stack(new).cpu().unbind(0))
    def after_fit(self):
        # an exported Learner pickles these, on the host as fastai leaves them, so it loads where there is no GPU
        rec = self.learn.recorder
        rec.smooth_loss.val = rec.smooth_loss.val.cpu()
        if isinstance(getattr(self.learn, 'smooth_loss', None), torch.Tensor):
            self.learn.smooth_loss = self.learn.smooth_loss.cpu()


class ProgressCallback(FastaiProgress):
    """fastai's progress bar (named as fastai's, so `learn.no_bar()` finds it), whose comment is the smooth loss of a
    batch or two before: copied into pinned memory without waiting, and shown once it has landed."""
    _stateattrs = FastaiProgress._stateattrs + ('slots', 'pending')  # CUDA events do not pickle into an export

    def before_fit(self):
        super().before_fit()
        self.slots, self.pending, self.text = None, collections.deque(), ''

    def after_batch(self):
        self.pbar.update(self.iter + 1)
        if not self.training or not hasattr(self.learn, 'smooth_loss'): return
        loss = self.learn.smooth_loss
        if self.slots is None: self.slots = collections.deque(HostSlot(loss) for _ in range(2))
        while self.pending and self.pending[0].landed():
            slot = self.pending.popleft()
            self.text = slot.read()
            self.slots.append(slot)
        if self.slots:
            self.pending.append(self.slots.popleft().start(loss))
        self.pbar.comment = self.text


class HostSlot:
    "A host buffer for a value like `like`, made once: a copy into it is queued, and read only after it has landed."
    def __init__(self, like: torch.Tensor):
        self.cuda = like.device.type == 'cuda'
        self.buf = torch.empty(like.shape, dtype=like.dtype, pin_memory=self.cuda)
        self.view = self.buf.numpy()  # numpy reads the buffer without asking torch, which would sync
        self.event = torch.cuda.Event() if self.cuda else None

    def start(self, t: torch.Tensor):
        self.buf.copy_(t.detach(), non_blocking=self.cuda)
        if self.event is not None: self.event.record()
        return self

    def landed(self) -> bool: return self.event is None or self.event.query()
    def read(self) -> str: return f'{float(self.view.mean()):.4f}'  # one loss, or one per process where gathered


def lean(learn):
    "`learn` without fastai's per-batch loss reads: the device smooth loss and the lagging bar in place of fastai's."
    if hasattr(learn, 'progress'):
        learn.remove_cb(learn.progress)
        learn.add_cb(ProgressCallback())
    return learn.add_cb(HostLosses())


READS = ('item', 'tolist', 'cpu', 'numpy', '__bool__', '__float__', '__int__', '__index__', '__format__')


@contextlib.contextmanager
def host_reads(device: str | None = None):
    """Count every call that reads a tensor on the host (`.item()`, `.cpu()`, `bool(t)`, …) while the block runs, by the
    call site outside torch that made it; with `device` ('cuda'), only reads of tensors there, which are the syncs. On a
    CPU a read costs nothing, but the same code makes it, so a test here finds the reads that sync on a GPU (and the
    reads of tensors that are on the host there too: `HOST_SIDE`)."""
    sites = collections.Counter()
    saved = {name: getattr(torch.Tensor, name) for name in READS}
    torch_dir = str(Path(torch.__file__).parent)

    def counted(name, fn):
        def read(self, *args, **kwargs):
            # a read made inside another (`__format__` calls `item`) counts once
            if not _depth and (device is None or self.device.type == device):
                frame = next((f for f in reversed(traceback.extract_stack()[:-1])
                              if not f.filename.startswith(torch_dir)), None)
                if frame is not None: sites[f'{short(frame.filename)}:{frame.name}:{name}'] += 1
            _depth.append(name)
            try: return fn(self, *args, **kwargs)
            finally: _depth.pop()
        return read

    for name, fn in saved.items(): setattr(torch.Tensor, name, counted(name, fn))
    try: yield sites
    finally:
        for name, fn in saved.items(): setattr(torch.Tensor, name, fn)


_depth = []


def short(filename: str) -> str:
    "`filename` from its package down (fastai/vision/augment.py), as the docs name the sites."
    parts = Path(filename).parts
    for top in ('fastai', 'paddy', 'fastprogress', 'timm', 'tests', 'benchmarks'):
        if top in parts: return '/'.join(parts[len(parts) - 1 - parts[::-1].index(top):])
    return Path(filename).name


# Reads a CPU run shows that are of host tensors on a GPU too, so no sync there
HOST_SIDE = {
    'fastai/learner.py:_step:item': "torch's foreach AdamW reads its step counts, which it keeps on the CPU; on CUDA "
                                    "paddy's AdamW is the fused kernel, which keeps them on the GPU and reads none",
    'fastai/callback/schedule.py:_inner': "the one-cycle schedule looks up its phase in a CPU tensor of phase starts",
}
# Syncs on a GPU that stay: fastai's batch augmentation decides on the host, from values it drew on the GPU
STAYS = {
    'fastai/vision/augment.py:_grid_sample:item': "whether to downsample before resampling depends on the zoom drawn "
                                                  "for the batch (`(mx - mn).item()`)",
    'fastai/vision/augment.py:apply_perspective:__bool__': "the warp checks its coordinates for a zero divisor "
                                                           "(`if (...).any()`)",
}


def unexpected(sites) -> list[str]:
    "The sites of `host_reads` not named in `HOST_SIDE` or `STAYS`: reads a change brought, to remove or to name."
    return sorted(s for s in sites if not any(s.startswith(k) for k in (*HOST_SIDE, *STAYS)))


def report(sites: collections.Counter, batches: int, out=sys.stdout):
    "Print each call site's reads per batch."
    for site, n in sites.most_common(): print(f'  {n / max(1, batches):6.2f} a batch  {site}', file=out)
