"""Honest comparisons on real field photos: are two runs with one training seed the same, does one run's interval
cover the spread of five seeds, and does `lr = 'find'` beat the recipe's hand-set rate?

usage: python benchmarks/seeds.py [DEEPWEEDS_DIR] [--part same spread find] [--csv rows.csv]
The techniques table's small recipe (benchmarks/techniques.py: Lite0 from the wheel, 96 px, 3 epochs, lr 0.01) on one
split seed (42):
- same: two runs with train_seed 7; their exported state dicts and their .npz compared exactly;
- spread: train_seed 1…5; the spread (standard deviation) of test accuracy, against the 95% interval that
  `paddy.compare.noise` gives the first run alone on its validation images;
- find: lr = 'find' against lr = 0.01, train seeds 1…3 each; test accuracy and the rate the finder chose.
Runs in a temporary folder; the item cache is shared, so it is built once.
"""
import argparse, os, sys, tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from techniques import RECIPE  # noqa: E402 (the benchmark's own small recipe, one place)

from paddy.cli import plain_logs  # noqa: E402
from paddy.compare import noise, right  # noqa: E402
from paddy.predict import load_model, load_preds  # noqa: E402
from paddy.spec import load  # noqa: E402
from paddy.train import Settings, train  # noqa: E402


def run(data: Path, truth: pd.Series, sets: list[str]) -> dict:
    "One run of the recipe with `sets`; its record with its test accuracy."
    experiments = Path(__file__).resolve().parent.parent / 'experiments'
    m = train(load('demo_lite0', RECIPE + ['seed=42', *sets], folder=experiments), Settings(data=str(data)))
    p = load_preds(Path(f"preds/{m['run']}.npz"))
    predicted = pd.Series(p['vocab'][p['test_probs'].argmax(1)], index=p['test_ids'])
    return dict(m, test_acc=float((predicted == truth[predicted.index]).mean()))


def same(data, truth) -> list[dict]:
    a, b = (run(data, truth, ['train_seed=7']) for _ in range(2))
    sa, sb = (load_model(Path(f"models/{m['run']}.pkl"), ours=True).model.state_dict() for m in (a, b))
    pa, pb = (load_preds(Path(f"preds/{m['run']}.npz")) for m in (a, b))
    weights = sa.keys() == sb.keys() and all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)
    probs = all(np.array_equal(pa[k], pb[k]) for k in ('valid_probs', 'test_probs'))
    print(f"same seed twice: identical weights {weights}, identical predictions {probs}", flush=True)
    return [dict(part='same', train_seed=7, run=m['run'], test_acc=m['test_acc'], identical=weights and probs)
            for m in (a, b)]


def spread(data, truth) -> list[dict]:
    runs = [run(data, truth, [f'train_seed={s}']) for s in range(1, 6)]
    t = noise({0: right([Path(f"preds/{runs[0]['run']}.npz")])})
    accs = [m['test_acc'] for m in runs]
    print(f"five seeds: test accuracy {np.mean(accs):.4f} ± {np.std(accs, ddof=1):.4f} (range {min(accs):.4f}–"
          f"{max(accs):.4f}); the first run's TTA error interval on its {runs[0]['n_valid']} validation images: "
          f"{t.lo.iloc[0]:.4f}–{t.hi.iloc[0]:.4f}, width {t.hi.iloc[0] - t.lo.iloc[0]:.4f}", flush=True)
    return [dict(part='spread', train_seed=s, run=m['run'], test_acc=m['test_acc'], tta_error=m['tta_error_rate'],
                 lo=t.lo.iloc[0] if s == 1 else None, hi=t.hi.iloc[0] if s == 1 else None)
            for s, m in zip(range(1, 6), runs)]


def find(data, truth) -> list[dict]:
    rows = []
    for lr in ('find', '0.01'):
        for s in range(1, 4):
            m = run(data, truth, [f'lr={lr}', f'train_seed={s}'])
            used = m['lr_find']['used'] if m.get('lr_find') else 0.01
            rows.append(dict(part='find', lr=lr, train_seed=s, run=m['run'], test_acc=m['test_acc'], lr_used=used,
                             fit_s=m["fit_time"]))
            print(f"lr={lr}, seed {s}: test accuracy {m['test_acc']:.4f} at lr {used:.2e}", flush=True)
    return rows


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('data', type=Path, nargs='?',
                    default=Path(__file__).resolve().parent.parent.parent / 'shared' / 'data' / 'deepweeds')
    ap.add_argument('--part', nargs='+', default=['same', 'spread', 'find'], choices=['same', 'spread', 'find'])
    ap.add_argument('--csv', type=Path, help='every run as a row, written after each part')
    a = ap.parse_args()
    data, csv = a.data.resolve(), a.csv and a.csv.resolve()
    truth = pd.read_csv(data / 'test_labels.csv', dtype=str).set_index('image_id').label
    os.chdir(tempfile.mkdtemp())
    plain_logs()
    rows = []
    for part in a.part:
        rows += {'same': same, 'spread': spread, 'find': find}[part](data, truth)
        if csv: pd.DataFrame(rows).to_csv(csv, index=False)
    print(pd.DataFrame(rows).to_string(index=False, float_format='%.4f'))
