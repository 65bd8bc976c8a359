"""Per core: paddy's training item pipeline against fastai's default one, side by side in one run.

usage: .venv/bin/python benchmarks/loader.py [--data ../shared/data/rice] [--n 360] [--bs 32] [--rounds 3] [--items
squish480 rect] Both pipelines read the same photos (the rice photos copied to N distinct files) at the same output
size, one core, no loader workers, through `dls.train` without batch transforms: decode + item transform + collate.
'cold' is the first epoch from a fresh start (for paddy that includes building its item cache), 'warm' the second."""
import argparse, os, shutil, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from fastai.vision.all import (CategoryBlock, DataBlock, ImageBlock, IndexSplitter, PadMode, Pipeline, Resize,
                               parent_label)

from paddy.data import dataloaders, num_workers, read_train
from paddy.spec import Experiment, hw


def repeat_photos(src: Path, dest: Path, n: int) -> pd.DataFrame:
    """`src`'s training photos copied to `n` distinct files in the competition's layout, so no file is read twice an
    epoch."""
    df = read_train(src)
    rows = []
    for k in range(n):
        r = df.iloc[k % len(df)]
        out = dest / 'train_images' / r.label / f'{k:06d}.jpg'
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(r.path, out)
        rows.append((out.name, r.label, '', ''))
    pd.DataFrame(rows, columns=['image_id', 'label', 'variety', 'age']).to_csv(dest / 'train.csv', index=False)
    return read_train(dest)


def fastai_default(df, exp, bs, valid=(), batch_tfms=None):
    "What paddy did before: fastai's ImageBlock (PIL decode) and `Resize` as the item transform."
    idx = np.flatnonzero(df.image_id.isin(set(valid)).values).tolist()
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=parent_label, splitter=IndexSplitter(idx),
                       item_tfms=[Resize(hw(exp.item_size), method=exp.resize, pad_mode=PadMode.Zeros)],
                       batch_tfms=batch_tfms)
    return dblock.dataloaders(df.path.tolist(), bs=bs, num_workers=num_workers())


def epoch(dl) -> int:
    n = 0
    for xb, yb in dl: n += len(xb)
    return n


def two_epochs(make) -> tuple[float, float, float]:
    "Seconds per image to make the DataLoaders (paddy builds its cache then), of the first epoch, and of the second."
    os.sync()  # what an earlier step left to write back is not this pipeline's cost
    t = time.perf_counter()
    dl = make().train
    # decode + item transform + collate only, as fastai's default measures without batch_tfms
    dl.after_batch = Pipeline([])
    made = time.perf_counter() - t
    n = epoch(dl)
    first = time.perf_counter() - t - made
    t = time.perf_counter()
    epoch(dl)
    return made / n, first / n, (time.perf_counter() - t) / n


def fresh_write(work: Path, n: int, nbytes: int = 640 * 480 * 3) -> float:
    "Seconds to write `nbytes` into a new file, the mean of `n` writes: what the cache pays per image beyond decoding."
    a = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8)
    os.sync()
    t = time.perf_counter()
    with open(work / 'probe.u8', 'wb') as f:
        for _ in range(n): f.write(a.data)
    return (time.perf_counter() - t) / n


ITEMS = {'squish480': ('squish', 480), 'rect': ('squish', (640, 480))}


def main(src: Path, n: int, bs: int, rounds: int, items=tuple(ITEMS)):
    os.environ['PADDY_WORKERS'] = '0'  # one core: no loader workers, one torch thread
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix='paddy-loader-'))
    try:
        df = repeat_photos(src, work / 'data', n)
        t = time.perf_counter()
        for f in df.path:
            with Image.open(f) as im: im.convert('RGB')
        # also brings every file into the page cache, for both pipelines alike
        decode = len(df) / (time.perf_counter() - t)
        print(f'{len(df)} photos from {src}, one core, bs {bs}; bare PIL decode: {decode:.0f} img/s', flush=True)
        rows = []
        for resize, size in [ITEMS[i] for i in items]:
            exp = Experiment(name='bench', arch='resnet18', resize=resize, item_size=size)
            fa, ours = [], []
            for r in range(rounds):  # interleaved, then the median: this machine's speed drifts from minute to minute
                # empty: paddy's first epoch builds it
                os.environ['PADDY_ITEM_CACHE'] = str(work / f'cache-{resize}-{r}')
                fa.append(two_epochs(lambda: fastai_default(df, exp, bs)))
                ours.append(two_epochs(lambda: dataloaders(df, exp, [], bs)))
                # as a user's disk would hold one cache of these photos, not many
                shutil.rmtree(work / f'cache-{resize}-{r}')
            fa, ours = np.median(fa, 0), np.median(ours, 0)
            label = f"{resize}-{'×'.join(map(str, hw(size)))}"
            for e, fa_s, ours_s in (('cold', fa[0] + fa[1], ours[0] + ours[1]), ('warm', fa[2], ours[2])):
                rows.append(dict(item=label, epoch=e, fastai_img_s=round(1 / fa_s), paddy_img_s=round(1 / ours_s),
                                 ratio=round(fa_s / ours_s, 2),
                                 of_decode_limit=round(1 / ours_s / decode, 2),
                                 paddy_setup_ms=round(1e3 * ours[0], 2) if e == 'cold' else None))
            print(pd.DataFrame(rows[-2:]).to_string(index=False, header=len(rows) == 2), flush=True)
        print(f'\nmedian of {rounds} interleaved rounds; paddy_setup_ms: building the item cache, per '
              'image, inside cold')
        print('this machine: writing one 640×480 image (921,600 bytes) into a new file costs '
              f'{1e3 * fresh_write(work, len(df)):.2f} ms '
              f'(that much of the cache setup is the disk cache taking fresh memory, whatever the pipeline)')
        print(pd.DataFrame(rows).to_string(index=False, na_rep=''))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', type=Path, default=Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'rice')
    ap.add_argument('--n', type=int, default=360)
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--items', nargs='+', choices=list(ITEMS), default=list(ITEMS))
    a = ap.parse_args()
    main(a.data, a.n, a.bs, a.rounds, a.items)
