"""Write a synthetic competition folder of portrait 480×640 JPEGs, for throughput checks where Kaggle's data can't go.

usage: python benchmarks/make_synthetic.py OUT [--train N] [--test N]
The pixels are noise plus a class-coloured blob: a model learns something, but only speed is measured here.
"""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

LABELS = ['bacterial_leaf_blight', 'bacterial_leaf_streak', 'bacterial_panicle_blight', 'blast', 'brown_spot',
          'dead_heart', 'downy_mildew', 'hispa', 'normal', 'tungro']


def image(rng, k):
    arr = rng.integers(0, 255, (640, 480, 3), dtype=np.uint8)  # (rows, cols): portrait, like the competition
    y, x = rng.integers(100, 540), rng.integers(100, 380)
    arr[y - 60:y + 60, x - 60:x + 60] = np.array([25 * k, 255 - 25 * k, 128], np.uint8)
    return Image.fromarray(arr)


def main(out: Path, n_train: int, n_test: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_train):
        k = i % len(LABELS)
        (out / 'train_images' / LABELS[k]).mkdir(parents=True, exist_ok=True)
        image(rng, k).save(out / 'train_images' / LABELS[k] / f'{100000 + i}.jpg', quality=90)
        rows.append((f'{100000 + i}.jpg', LABELS[k], 'ADT45', 45))
    pd.DataFrame(rows, columns=['image_id', 'label', 'variety', 'age']).to_csv(out / 'train.csv', index=False)
    (out / 'test_images').mkdir(parents=True, exist_ok=True)
    ids = [f'{200000 + i}.jpg' for i in range(n_test)]
    for i in ids: image(rng, int(rng.integers(10))).save(out / 'test_images' / i, quality=90)
    pd.DataFrame({'image_id': ids, 'label': 'normal'}).to_csv(out / 'sample_submission.csv', index=False)
    print(f'wrote {n_train} train and {n_test} test images to {out}')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('out', type=Path)
    ap.add_argument('--train', type=int, default=2000)
    ap.add_argument('--test', type=int, default=200)
    a = ap.parse_args()
    main(a.out, a.train, a.test)
