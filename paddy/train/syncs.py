"""Training without per-batch host syncs, and a way to find them. Reading a GPU value on the host (`.item()`, `.cpu()`)
makes the CPU wait until the GPU has finished everything queued; then it cannot queue the next batch's copy,
augmentation and kernel launches while the GPU computes, and the GPU idles in between (docs/benchmarks.md).

fastai reads the loss back every batch twice: `AvgSmoothLoss` detaches it to the CPU, and `ProgressCallback` prints it
with `.item()`. Here the smooth loss stays on the device, the recorder's losses come to the host once an epoch, and
the bar shows the loss of a batch or two before, copied in the background. What finds the reads that sync is in
benchmarks/host_reads.py, with the tests and benchmarks that use it."""
import collections

import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback as FastaiProgress
from fastai.learner import AvgSmoothLoss, Recorder
from fastai.torch_core import to_detach

from ..compat import progress_state


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
    _stateattrs = progress_state('slots', 'pending')  # CUDA events do not pickle into an export

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


def without_host_reads(learn):
    "`learn` without fastai's per-batch loss reads: the device smooth loss and the lagging bar in place of fastai's."
    if hasattr(learn, 'progress'):
        learn.remove_cb(learn.progress)
        learn.add_cb(ProgressCallback())
    return learn.add_cb(HostLosses())
