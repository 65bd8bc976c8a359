"""Finding host syncs: every call that reads a tensor on the host (`.item()`, `.cpu()`, `bool(t)`, …), counted by the
call site that made it, and the sites known to be harmless or to stay. Instrumentation for tests/test_train_syncs.py
and benchmarks/gpu.py, kept out of the package it measures (paddy/train/syncs.py)."""
import collections, contextlib, sys, traceback
from pathlib import Path

import torch

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
