"""Where the training process spends one epoch of `paddy train`'s Learner, built as `paddy train` builds it: Python's
profiler (every thread from Python 3.12, the main thread before it), top functions by own time and by total time.

usage: python benchmarks/profile_learner.py DATA [--arch convnext_small] [--size 288 224] [--bs 64] [--batches 60]
[--time-only] DATA is a competition folder, e.g. from benchmarks/make_synthetic.py. On CUDA the GPU runs ahead of
Python, so time that shows up in a synchronising call (`.item()`, `.cpu()`, a blocking copy) is time Python waited for
the GPU."""
import argparse, cProfile, io, pstats, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from gpu import ShortEpoch

from paddy.data import dataloaders, num_workers, read_train, valid_ids
from paddy.spec import Experiment
from paddy.train.learner import adamw, learner, precision, speedups
from paddy.train.weights import Weights


def experiment(arch: str, size, bs: int, name: str = 'profile') -> Experiment:
    "The profiled recipe: `arch` from random init on 640×480 items, seen at `size`."
    return Experiment(name=name, arch=arch, resize='squish', item_size=(640, 480), aug_size=tuple(size), bs=bs,
                      pretrained=False)


def main(data: Path, arch: str, size, bs: int, batches: int, time_only: bool = False):
    exp = experiment(arch, size, bs, 'profile')
    df = read_train(data)
    valid = valid_ids(df.image_id, 42, exp.valid_pct)
    cuda = torch.cuda.is_available()
    dls = dataloaders(df, exp, valid, bs, pin_memory=cuda)
    learn = speedups(learner(dls, exp, Weights(False), opt_func=adamw()), precision('auto'), True)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3, cbs=[ShortEpoch(20)])  # warm-up: cuDNN's kernel search, the workers' first start
        prof = cProfile.Profile()
        t = time.perf_counter()
        if not time_only: prof.enable()
        learn.fit(1, 1e-3, cbs=[ShortEpoch(batches)])
        if cuda: torch.cuda.synchronize()
        prof.disable()
    wall = time.perf_counter() - t
    print(f'{torch.cuda.get_device_name() if cuda else "cpu"}: {arch} at {tuple(size)}, bs {bs}, {num_workers()} '
          'loader workers: '
          f'{batches * bs / wall:.0f} img/s over {batches} batches ({wall:.1f} s, loader start included'
          + (')' if time_only else ', profiler on)'), flush=True)
    if time_only: return
    for key in ('tottime', 'cumulative'):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(25)
        print(f'--- by {key} ---\n' + '\n'.join(l for l in out.getvalue().splitlines() if l.strip())[:6000])


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('data', type=Path)
    ap.add_argument('--arch', default='convnext_small')
    ap.add_argument('--size', type=int, nargs=2, default=(288, 224))
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--batches', type=int, default=60)
    ap.add_argument('--time-only', action='store_true',
                    help='no profiler: img/s alone, e.g. to compare PADDY_WORKERS settings')
    a = ap.parse_args()
    main(a.data, a.arch, a.size, a.bs, a.batches, a.time_only)
