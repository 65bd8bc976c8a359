"""Each view's error for the same weights, on the validation split and the scored test set: the plain view (what
`error_rate`, the ranking and every non-TTA prediction use) at the crop's validation scale of 1 (fastai's, before
paddy's `ScaledCrop`) and at `train_scale` (paddy's now), each augmented view of fastai's TTA, the mean of n = 1, 2
and 4 of them, fastai's blend (`torch.lerp(aug, plain, 0.25)`: three quarters augmented) and the seconds each pass took.

    .venv/bin/python benchmarks/views.py models/RUN.pkl … [--json rows.json]

The data folder is the run's own, with its test_labels.csv (../shared/data/deepweeds has one)."""
import argparse, json, random, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd


def passes(learn, dl, y, n: int, scale: float) -> tuple[dict, np.ndarray, list]:
    "The plain pass at validation scale `scale` and `n` augmented passes over `dl`, with their errors and seconds."
    import torch
    from fastai.vision.all import RandomResizedCropGPU
    crop = next(t for t in dl.after_batch.fs if isinstance(t, RandomResizedCropGPU))
    crop.valid_scale, out = scale, {}
    with learn.no_logging(), learn.no_mbar():
        t = time.perf_counter()
        with dl.dataset.set_split_idx(1): plain = learn.get_preds(dl=dl)[0].numpy()
        out['plain'], out['plain_s'] = float((plain.argmax(1) != y).mean()), time.perf_counter() - t
        aug = []
        with dl.dataset.set_split_idx(0):
            for i in range(n):
                torch.manual_seed(i); random.seed(i)
                t = time.perf_counter()
                aug.append(learn.get_preds(dl=dl)[0].numpy())
                out[f'aug{i + 1}'], out['aug_s'] = float((aug[-1].argmax(1) != y).mean()), time.perf_counter() - t
    for k in (1, 2, 4, 8, 16):
        if k > n: break
        m = np.mean(aug[:k], 0)
        out[f'mean{k}'] = float((m.argmax(1) != y).mean())
        out[f'tta{k}'] = float(((0.75 * m + 0.25 * plain).argmax(1) != y).mean())
    return out, plain, aug


def views(pkl: Path, n: int = 4) -> list[dict]:
    "Rows of `passes` for run `pkl` on its validation split and on its data's scored test set, at both scales."
    from fastai.learner import load_learner
    from paddy.data import read_train
    from paddy.data.tfms import train_scale
    meta = json.loads(pkl.with_suffix('.json').read_text())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn = load_learner(pkl, cpu=True)
    data = Path(meta['data'])
    vocab = [str(v) for v in learn.dls.vocab]
    val = read_train(data).set_index('image_id').loc[meta['valid_ids']]
    tst = pd.read_csv(data / 'test_labels.csv', dtype=str)
    sets = {'valid': (val.path.tolist(), val.label), 'test': ([str(data / 'test_images' / i) for i in tst.image_id],
                                                              tst.label)}
    rows = []
    for name, (files, labels) in sets.items():
        dl = learn.dls.test_dl(files, num_workers=0)
        y = np.array([vocab.index(lbl) for lbl in labels])
        for scale in (1.0, round(train_scale(meta['experiment']['min_scale']), 3)):
            out, _, _ = passes(learn, dl, y, n, scale)
            rows.append(dict(run=meta['run'], set=name, valid_scale=scale, **out))
    return rows


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('pkls', nargs='+', type=Path)
    ap.add_argument('--n', type=int, default=4)
    ap.add_argument('--json', type=Path)
    a = ap.parse_args()
    rows = [r for p in a.pkls for r in views(p, a.n)]
    df = pd.DataFrame(rows)
    with pd.option_context('display.width', 250, 'display.float_format', '{:.4f}'.format):
        print(df.to_string(index=False))
    if a.json: a.json.write_text(json.dumps(rows, indent=1))
