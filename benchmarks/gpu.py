"""On a CUDA machine: paddy's training throughput against a bare timm loop fed from memory, with GPU utilisation, and
yesterday's settings (fastai's default item pipeline, fp16, NCHW, fastai's Adam) against the item cache, bf16 and
channels_last, pinned batches and fused AdamW, added one at a time.

usage: python benchmarks/gpu.py DATA [--arch convnext_small] [--size 288 224] [--bs 64] [--steps 40] [--compare]
DATA is a competition folder, e.g. one of 10,407 synthetic 480×640 JPEGs from benchmarks/make_synthetic.py. Each
Learner row is one timed epoch after a short untimed warm-up fit on the same loaders; img/s counts training images
over the training phase alone, as the bare loop does. Runs on CPU too, slowly, to check the script itself.
"""
import argparse, os, sys, threading, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from loader import fastai_default  # the pipeline paddy had before its item cache

from fastai.callback.core import Callback
from fastai.vision.all import Adam, aug_transforms

from paddy.data import dataloaders, num_workers, read_train, valid_ids
from paddy.train.learner import adamw, learner, precision, speedups
from paddy.spec import Experiment, hw
from paddy.train.weights import Weights


class Utilisation:
    "Mean GPU utilisation (%) sampled every 100 ms through NVML while in the `with` block; None where NVML is missing."
    def __enter__(self):
        self.samples, self.stop = [], threading.Event()
        try:
            import pynvml
            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            def poll():
                while not self.stop.wait(0.1): self.samples.append(pynvml.nvmlDeviceGetUtilizationRates(h).gpu)
            self.thread = threading.Thread(target=poll, daemon=True)
            self.thread.start()
        except Exception: self.thread = None
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread: self.thread.join()

    @property
    def mean(self): return round(float(np.mean(self.samples)), 1) if self.samples else None


class TrainTimer(Callback):
    "Seconds of the training phase of each epoch, with the GPU's work finished, and the images it saw."
    order = 100
    def before_train(self): self._sync(); self.t0 = time.perf_counter()
    def after_train(self): self._sync(); self.secs = time.perf_counter() - self.t0; self.n = len(self.dl) * self.dl.bs
    def _sync(self):
        if torch.cuda.is_available(): torch.cuda.synchronize()


def bare_loop(exp: Experiment, prec: str, channels_last: bool, steps: int) -> float:
    "img/s of a hand-written timm training loop on one uint8 batch held in pinned memory: no decode, no augmentation."
    import timm
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = timm.create_model(exp.arch, pretrained=False, num_classes=10).to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(enabled=prec == 'fp16')
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(prec)
    xb = torch.randint(0, 255, (exp.bs, 3, *hw(exp.aug_size)), dtype=torch.uint8)
    xb = xb.pin_memory() if dev == 'cuda' else xb
    yb = torch.randint(0, 10, (exp.bs,), device=dev)
    def step():
        x = (xb.to(dev, non_blocking=True).float() / 255).contiguous(memory_format=fmt)
        with torch.autocast(dev, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), yb)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    for _ in range(5): step()  # cuDNN picks its kernels
    if dev == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps): step()
    if dev == 'cuda': torch.cuda.synchronize()
    return steps * exp.bs / (time.perf_counter() - t)


def learner_epoch(dls, exp: Experiment, prec: str, channels_last: bool, **kwargs) -> tuple[float, float | None]:
    "img/s and mean GPU utilisation of one epoch's training phase of paddy's Learner, after a short warm-up fit."
    learn = speedups(learner(dls, exp, Weights(False), **kwargs), prec, channels_last)
    timer = TrainTimer()
    learn.add_cb(timer)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3, cbs=[ShortEpoch(20)])  # warm-up: cuDNN's kernel search, the loader workers' first start
        with Utilisation() as u: learn.fit_one_cycle(1, 1e-3)
    return timer.n / timer.secs, u.mean


class ShortEpoch(Callback):
    "Stop training after `n` batches and skip validation: a warm-up."
    def __init__(self, n): self.n = n
    def after_batch(self):
        if self.training and self.iter + 1 >= self.n: raise __import__('fastai').learner.CancelEpochException
    def before_validate(self): raise __import__('fastai').learner.CancelValidException


def variants(df, exp, valid, auto):
    "The item cache with bf16 and channels_last, then with PyTorch's fused AdamW, pinned batches, and both."
    rows = []
    plain, pinned = dataloaders(df, exp, valid, exp.bs), dataloaders(df, exp, valid, exp.bs, pin_memory=True)
    for name, dls, opt in (('cache', plain, Adam), ('cache, fused AdamW', plain, adamw()),
                           ('cache, pinned', pinned, Adam), ('cache, pinned, fused AdamW', pinned, adamw())):
        r, u = learner_epoch(dls, exp, auto, True, opt_func=opt)
        rows.append(dict(what='paddy Learner, one epoch', pipeline=name, precision=auto, channels_last=True,
                         img_s=round(r), gpu_util=u))
        print(rows[-1], flush=True)
    return rows


def experiment(arch: str, size, bs: int, name: str = 'gpu') -> Experiment:
    "The benchmarked recipe: `arch` from random init on 640×480 items, seen at `size`."
    return Experiment(name=name, arch=arch, resize='squish', item_size=(640, 480), aug_size=tuple(size), bs=bs,
                      pretrained=False)


def parser(doc: str) -> argparse.ArgumentParser:
    "The arguments every GPU benchmark here takes: DATA, --arch, --size, --bs."
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument('data', type=Path)
    ap.add_argument('--arch', default='convnext_small')
    ap.add_argument('--size', type=int, nargs=2, default=(288, 224))
    ap.add_argument('--bs', type=int, default=64)
    return ap


def main(data: Path, arch: str, size, bs: int, steps: int, compare: bool = False):
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'
    exp = experiment(arch, size, bs)
    df = read_train(data)
    valid = valid_ids(df.image_id, 42, exp.valid_pct)
    auto = precision('auto')
    print(f'{dev}: {arch} at {hw(exp.aug_size)}, bs {bs}, {len(df)} images from {data}, {num_workers()} '
          'loader workers, '
          f'{os.cpu_count()} cores, auto precision {auto}', flush=True)
    rows = []
    if compare:
        r = bare_loop(exp, auto, True, steps)
        rows = [dict(what='bare timm loop, batch in memory', pipeline='-', precision=auto, channels_last=True,
                     img_s=round(r), gpu_util=None)]
        print(rows[-1], flush=True)
        df = pd.DataFrame(rows + variants(df, exp, valid, auto))
        df['vs_first_learner'] = (df.img_s / df.img_s.iloc[1]).round(2)
        return print('\n' + df.to_string(index=False, na_rep=''))
    for prec, cl in (('fp16', False), (auto, True)):
        r = bare_loop(exp, prec if torch.cuda.is_available() else 'fp32', cl, steps)
        rows.append(dict(what='bare timm loop, batch in memory', pipeline='-', precision=prec, channels_last=cl,
                         img_s=round(r), gpu_util=None))
        print(rows[-1], flush=True)
    t = time.perf_counter()
    cached = dataloaders(df, exp, valid, bs)
    build = time.perf_counter() - t
    print(f'item cache ready in {build:.1f} s', flush=True)
    default = fastai_default(df, exp, bs, valid=valid,
                             batch_tfms=aug_transforms(size=hw(exp.aug_size), min_scale=exp.min_scale))
    pinned = dataloaders(df, exp, valid, bs, pin_memory=torch.cuda.is_available())
    for name, dls, prec, cl, opt in (("fastai default (today's)", default, 'fp16', False, Adam),
                                     ('item cache', cached, 'fp16', False, Adam),
                                     ('item cache', cached, auto, True, Adam),
                                     ('paddy train now: cache, pinned, fused AdamW', pinned, auto, True, adamw())):
        if not torch.cuda.is_available(): prec = 'fp32'
        r, u = learner_epoch(dls, exp, prec, cl, opt_func=opt)
        rows.append(dict(what='paddy Learner, one epoch', pipeline=name, precision=prec, channels_last=cl,
                         img_s=round(r), gpu_util=u))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    base = df.img_s[(df.pipeline == "fastai default (today's)")].iloc[0]
    df['vs_today'] = (df.img_s / base).round(2)
    print()
    print(df.to_string(index=False, na_rep=''))
    print(f'item cache build: {build:.1f} s for {len(read_train(data))} images')


if __name__ == '__main__':
    ap = parser(__doc__)
    ap.add_argument('--steps', type=int, default=40)
    ap.add_argument('--compare', action='store_true',
                    help="instead: the cache's Learner with fused AdamW and pinned batches, each and both")
    a = ap.parse_args()
    main(a.data, a.arch, a.size, a.bs, a.steps, a.compare)
