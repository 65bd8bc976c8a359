"""Write a synthetic competition folder of portrait 480×640 JPEGs, for throughput checks where Kaggle's data can't go.

usage: python benchmarks/make_synthetic.py OUT [--train N] [--test N] [--workers N]
The pixels are a smooth random field with light noise, like a photo's (so JPEG sizes and decode times are a photo's),
plus a class-coloured blob: a model learns something, but only speed is measured here.
"""
import argparse, os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

LABELS = ['bacterial_leaf_blight', 'bacterial_leaf_streak', 'bacterial_panicle_blight', 'blast', 'brown_spot',
          'dead_heart', 'downy_mildew', 'hispa', 'normal', 'tungro']


def image(rng, k):
    field = Image.fromarray(rng.integers(0, 255, (10, 8, 3), dtype=np.uint8)).resize((480, 640), Image.BICUBIC)
    # (rows, cols): portrait
    arr = np.asarray(field).astype(np.int16) + rng.normal(0, 4, (640, 480, 3)).astype(np.int16)
    y, x = rng.integers(100, 540), rng.integers(100, 380)
    arr[y - 60:y + 60, x - 60:x + 60] = np.array([25 * k, 255 - 25 * k, 128])
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def _save(job):
    path, k, seed = job
    image(np.random.default_rng(seed), k).save(path, quality=90)


def main(out: Path, n_train: int, n_test: int, seed: int = 0, workers: int = 1):
    rng = np.random.default_rng(seed)
    rows, jobs = [], []
    for i in range(n_train):
        k = i % len(LABELS)
        (out / 'train_images' / LABELS[k]).mkdir(parents=True, exist_ok=True)
        jobs.append((out / 'train_images' / LABELS[k] / f'{100000 + i}.jpg', k, seed * 10**7 + i))
        rows.append((f'{100000 + i}.jpg', LABELS[k], 'ADT45', 45))
    (out / 'test_images').mkdir(parents=True, exist_ok=True)
    ids = [f'{200000 + i}.jpg' for i in range(n_test)]
    jobs += [(out / 'test_images' / i, int(rng.integers(10)), seed * 10**7 + 5 * 10**6 + j) for j, i in enumerate(ids)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex: list(ex.map(_save, jobs, chunksize=32))
    else: [_save(j) for j in jobs]
    pd.DataFrame(rows, columns=['image_id', 'label', 'variety', 'age']).to_csv(out / 'train.csv', index=False)
    pd.DataFrame({'image_id': ids, 'label': 'normal'}).to_csv(out / 'sample_submission.csv', index=False)
    print(f'wrote {n_train} train and {n_test} test images to {out}')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('out', type=Path)
    ap.add_argument('--train', type=int, default=2000)
    ap.add_argument('--test', type=int, default=200)
    ap.add_argument('--workers', type=int, default=os.cpu_count())
    a = ap.parse_args()
    main(a.out, a.train, a.test, workers=a.workers)
