"""On a CUDA machine, in one run: a bare timm training loop (eager and compiled) against paddy's Learner as it was
before issue 15, as it is now, and with `compile = True`; for each experiment named, one row each, with img/s, GPU
utilisation, peak memory and compile seconds. Then the syncs one epoch of paddy's Learner still makes, and the cold
epoch (building the item cache) against fastai's default pipeline at 4 loader workers.

usage: python benchmarks/gpu.py DATA [--exps convnext_small_rect vit_small_squish swin_small_squish] [--bs 64]
       [--steps 40] [--no-compile] [--no-cold] [--rows FILE.csv]
DATA is a competition folder, e.g. synthetic 480×640 JPEGs from benchmarks/make_synthetic.py. The experiments are
the spec files, from random init. Each Learner row is the training phase of one epoch after a 20-batch warm-up (which
compiles, for compiled rows); img/s counts training images over that phase alone, as the bare loop counts its steps.
The bare loop trains on one uint8 batch of the augmented size held on the GPU: no decode, no augmentation. Rows are
appended to --rows and the table printed is every row there, so the experiments can be run in separate calls. Runs
on a CPU too, slowly, to check the script itself.
"""
import argparse, collections, contextlib, dataclasses, os, shutil, sys, tempfile, threading, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from loader import fastai_default  # the item pipeline paddy had before its item cache
import host_reads  # counts the host reads that sync, by call site

from fastai.callback.core import Callback
from fastai.data.core import TfmdDL

from paddy.data import dataloaders, read_train, valid_ids
from paddy.spec import Experiment, hw, load
from paddy.train.compiled import Compiling, compile_model
from paddy.train.learner import learner, precision, speedups
from paddy.train.weights import Weights

CUDA = torch.cuda.is_available()


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


def sync():
    if CUDA: torch.cuda.synchronize()


def peak_reset():
    if CUDA: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()


def peak_gb(): return round(torch.cuda.max_memory_allocated() / 2**30, 1) if CUDA else None


class TrainTimer(Callback):
    "Seconds of the training phase of each epoch, with the GPU's work finished, and the images it saw."
    order = 100
    def before_train(self): sync(); self.t0 = time.perf_counter()
    def after_train(self): sync(); self.secs = time.perf_counter() - self.t0; self.n = len(self.dl) * self.dl.bs


class ShortEpoch(Callback):
    "Stop training after `n` batches and skip validation: a warm-up."
    def __init__(self, n): self.n = n
    def after_batch(self):
        if self.training and self.iter + 1 >= self.n: raise __import__('fastai').learner.CancelEpochException
    def before_validate(self): raise __import__('fastai').learner.CancelValidException


def bare_loop(exp: Experiment, prec: str, steps: int, compiled: bool = False) -> dict:
    "A hand-written timm loop on one uint8 batch held on the device: img/s, utilisation, peak memory, compile seconds."
    import timm
    dev = 'cuda' if CUDA else 'cpu'
    peak_reset()
    model = timm.create_model(exp.arch, pretrained=False, num_classes=10).to(dev)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=CUDA or None)
    scaler = torch.amp.GradScaler(enabled=prec == 'fp16')
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(prec)
    xb = torch.randint(0, 255, (exp.bs, 3, *hw(exp.aug_size)), dtype=torch.uint8, device=dev)
    yb = torch.randint(0, 10, (exp.bs,), device=dev)
    # as `compile = True` compiles: the spec's backend, and its mode for inductor
    kw = dict(mode=exp.compile_mode) if exp.compile_backend == 'inductor' else {}
    step_model = torch.compile(model, backend=exp.compile_backend, **kw) if compiled else model
    def step():
        x = (xb.float() / 255).contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(step_model(x), yb)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    with Compiling() as c:
        for _ in range(5): step()  # cuDNN picks its kernels; a compiled model compiles
        sync()
    t = time.perf_counter()
    with Utilisation() as u:
        for _ in range(steps): step()
        sync()
    return dict(img_s=round(steps * exp.bs / (time.perf_counter() - t)), gpu_util=u.mean, peak_gb=peak_gb(),
                compile_s=round(c.seconds, 1) if compiled else None)


def before_issue_15(learn):
    "paddy's Learner as it was: fastai's progress bar and smooth loss, which read the loss back every batch."
    from fastai.callback.progress import ProgressCallback
    from fastai.learner import AvgSmoothLoss
    learn.remove_cbs([learn.progress, learn.host_losses])
    learn.add_cb(ProgressCallback())
    learn.recorder.smooth_loss = AvgSmoothLoss(learn.recorder.smooth_loss.beta)
    return learn


def learner_epoch(dls, exp: Experiment, prec: str, before: bool = False, compiled: bool = False) -> dict:
    "One epoch's training phase of paddy's Learner after a 20-batch warm-up, as `bare_loop` measures it."
    peak_reset()
    learn = speedups(learner(dls, exp, Weights(False)), prec, True)
    if before: before_issue_15(learn)
    if compiled: compile_model(learn, exp)
    timer = TrainTimer()
    learn.add_cb(timer)
    with learn.no_logging(), Compiling() as c:
        learn.fit(1, 1e-3, cbs=[ShortEpoch(20)])  # warm-up: cuDNN's search, the loader workers' start, compiling
        warm = c.seconds
        with Utilisation() as u: learn.fit_one_cycle(1, 1e-3)
    return dict(img_s=round(timer.n / timer.secs), gpu_util=u.mean, peak_gb=peak_gb(),
                compile_s=round(c.seconds, 1) if compiled else None,
                # compiling after the warm-up: the evaluation graphs, or a recompile, if any, of the training step
                later_compile_s=round(c.seconds - warm, 1) if compiled else None)


def spec(name: str, bs: int) -> Experiment:
    "Experiment `name` from random init at batch size `bs`, with the --set overrides."
    return dataclasses.replace(load(name, ['pretrained=False', *SETS]), bs=bs)


SETS = []  # --set: e.g. a tiny arch and size, to try the script on a CPU


def rows_for(name: str, df, data: Path, bs: int, steps: int, compile_too: bool) -> list[dict]:
    "The five rows of one experiment, in one process, side by side."
    exp = spec(name, bs)
    valid = valid_ids(df.image_id, 42, exp.valid_pct)
    prec = precision('auto')
    head = dict(exp=name, arch=exp.arch, size='×'.join(map(str, hw(exp.aug_size))),
                item='×'.join(map(str, hw(exp.item_size))), precision=prec)
    out = []
    def add(what, r):
        out.append({**head, 'what': what, **r})
        print(out[-1], flush=True)
    add('bare loop, eager', bare_loop(exp, prec, steps))
    if compile_too: add('bare loop, torch.compile', bare_loop(exp, prec, steps, compiled=True))
    host = dataloaders(df, exp, valid, exp.bs, data=data, pin_memory=CUDA, resident=False, dl_type=TfmdDL)
    add('paddy before (host cache, pinned, blocking copy, per-batch loss reads)',
        learner_epoch(host, exp, prec, before=True))
    del host
    now = dataloaders(df, exp, valid, exp.bs, data=data, pin_memory=CUDA)
    add(f'paddy now (batches from the {now.item_cache_where} cache)', learner_epoch(now, exp, prec))
    if compile_too:
        add('paddy now + compile = True', learner_epoch(now, dataclasses.replace(exp, compile=True), prec,
                                                        compiled=True))
    return out


def sync_sites(name: str, df, data: Path, bs: int, batches: int = 20):
    "Every sync one epoch of paddy's Learner makes, by where it comes from: torch's sync debug mode on CUDA."
    exp = spec(name, bs)
    dls = dataloaders(df, exp, valid_ids(df.image_id, 42, exp.valid_pct), exp.bs, data=data, pin_memory=CUDA)
    learn = speedups(learner(dls, exp, Weights(False)), precision('auto'), True)
    with learn.no_logging(): learn.fit(1, 1e-3, cbs=[ShortEpoch(5)])

    class Watch(Callback):
        order = -100
        def before_batch(self):
            if self.iter == 2: self.stack.enter_context(syncs_watched(self))
        def after_train(self): self.stack.close()
    w = Watch()
    w.stack, w.found, w.reads = contextlib.ExitStack(), collections.Counter(), None
    with learn.no_logging(): learn.fit(1, 1e-3, cbs=[w, ShortEpoch(batches)])
    print(f'\nsyncs in training batches 3–{batches} of {name} (torch.cuda.set_sync_debug_mode), per batch:')
    for site, n in w.found.most_common(): print(f'  {n / (batches - 2):6.2f}  {site}')
    print('host reads of GPU tensors there (benchmarks/host_reads.py), per batch:')
    host_reads.report(w.reads, batches - 2)


@contextlib.contextmanager
def syncs_watched(w):
    "Record torch's sync warnings by the line that made them, and the host reads of GPU tensors, into `w`."
    with warnings.catch_warnings(record=True) as caught, host_reads.host_reads('cuda' if CUDA else None) as reads:
        warnings.simplefilter('always')
        if CUDA: torch.cuda.set_sync_debug_mode('warn')
        try: yield
        finally:
            if CUDA: torch.cuda.set_sync_debug_mode('default')
    w.reads = reads
    for m in caught:
        if 'synchroniz' in str(m.message): w.found[f'{host_reads.short(m.filename)}:{m.lineno}'] += 1


def cold_epoch(df, data: Path, bs: int, workers: int = 4) -> list[dict]:
    """Seconds to the end of the first training epoch's loading from nothing: paddy building its item cache then reading
    it, against fastai's default pipeline; both at `workers` loader workers, decode and item transforms only."""
    from fastai.vision.all import Pipeline
    exp = spec('convnext_small_rect', bs)
    valid = valid_ids(df.image_id, 42, exp.valid_pct)
    old = {k: os.environ.get(k) for k in ('PADDY_WORKERS', 'PADDY_ITEM_CACHE')}
    tmp = Path(tempfile.mkdtemp(prefix='paddy-cold-'))
    os.environ.update(PADDY_WORKERS=str(workers), PADDY_ITEM_CACHE=str(tmp))
    rows = []
    try:
        for what, make in ((f"fastai default, {workers} workers", lambda: fastai_default(df, exp, bs, valid=valid)),
                           (f'paddy, {workers} workers: item cache built, then read',
                            lambda: dataloaders(df, exp, valid, bs, data=data, pin_memory=CUDA))):
            os.sync()
            t = time.perf_counter()
            dl = make().train
            dl.after_batch = Pipeline([])  # decode + item transform + collate, as fastai's default is measured
            n = sum(len(b[0]) for b in dl)
            s = time.perf_counter() - t
            rows.append(dict(what=what, images=n, seconds=round(s, 1), img_s=round(n / s)))
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return rows


def main(data: Path, exps, bs: int, steps: int, compile_too: bool, cold: bool, rows_file: Path | None):
    dev = torch.cuda.get_device_name() if CUDA else 'cpu'
    df = read_train(data)
    print(f'{dev}, {os.cpu_count()} cores, torch {torch.__version__}: {len(df)} images from {data}, bs {bs}; '
          f'{", ".join(exps)}', flush=True)
    if cold: cold_rows = cold_epoch(df, data, bs)
    rows = [r for name in exps for r in rows_for(name, df, data, bs, steps, compile_too)]
    sync_sites(exps[0], df, data, bs)
    table = pd.DataFrame(rows)
    if rows_file:
        if rows_file.exists(): table = pd.concat([pd.read_csv(rows_file), table], ignore_index=True)
        table.to_csv(rows_file, index=False)
    bare = table[table.what == 'bare loop, eager'].set_index('exp').img_s
    table['vs_bare_eager'] = (table.img_s / table.exp.map(bare)).round(2)
    print('\n' + table.drop(columns=['arch']).to_string(index=False, na_rep=''))
    if cold: print('\ncold epoch (loading only):\n' + pd.DataFrame(cold_rows).to_string(index=False))


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('data', type=Path)
    ap.add_argument('--exps', nargs='+', default=['convnext_small_rect', 'vit_small_squish', 'swin_small_squish'])
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--steps', type=int, default=40)
    ap.add_argument('--no-compile', action='store_true', help='skip the compiled rows (minutes of compiling each)')
    ap.add_argument('--no-cold', action='store_true', help='skip the cold-epoch comparison')
    ap.add_argument('--rows', type=Path, help='append the rows to this CSV and print every row it holds')
    ap.add_argument('--set', action='append', default=[], help='FIELD=VALUE for every experiment, as paddy train')
    a = ap.parse_args()
    SETS.extend(a.set)
    main(a.data, a.exps, a.bs, a.steps, not a.no_compile, not a.no_cold, a.rows)
