"""Ensembling 10 runs of the competition's 3,469×10 test probabilities (and 2,081 validation rows) into a checked CSV.

usage: .venv/bin/python benchmarks/ensemble.py [--runs 10] [--repeats 5]
Times `paddy.ensemble.ensemble` in process (load the .npz files, check them, average, write the CSV and its .json),
then the whole `paddy ensemble` command, Python start and imports included.
"""
import argparse, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd

from paddy.ensemble import ensemble
from paddy.predict import save_preds
from paddy.workspace import Workspace

LABELS = ['bacterial_leaf_blight', 'bacterial_leaf_streak', 'bacterial_panicle_blight', 'blast', 'brown_spot',
          'dead_heart', 'downy_mildew', 'hispa', 'normal', 'tungro']


def fake_runs(root: Path, runs: int, n_test: int = 3469, n_valid: int = 2081) -> Path:
    """A competition folder's CSVs (no images: ensembling reads none) and `runs` prediction files like `paddy train`
    writes."""
    data = root / 'data'
    for d in ('train_images', 'test_images'): (data / d).mkdir(parents=True)
    ids = [f'{200001 + i}.jpg' for i in range(n_test)]
    pd.DataFrame({'image_id': ids, 'label': 'normal'}).to_csv(data / 'sample_submission.csv', index=False)
    pd.DataFrame(columns=['image_id', 'label', 'variety', 'age']).to_csv(data / 'train.csv', index=False)
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 10, n_valid)
    for r in range(runs):
        probs = lambda n: rng.dirichlet(np.ones(10), n).astype(np.float32)
        save_preds(root / 'preds' / f'run{r}.npz', f'run{r}', dict(
            vocab=np.array(LABELS), data=np.array(str(data.resolve())),
            valid_ids=np.array([f'{100001 + i}.jpg' for i in range(n_valid)]),
            valid_probs=probs(n_valid), valid_targets=targets, test_ids=np.array(ids), test_probs=probs(n_test)))
    return data


def main(runs: int, repeats: int):
    root = Path(tempfile.mkdtemp(prefix='paddy-ensemble-'))
    try:
        data = fake_runs(root, runs)
        times = []
        for k in range(repeats):
            t = time.perf_counter()
            ensemble(data=data, name=f'e{k}', ws=Workspace(root))
            times.append(time.perf_counter() - t)
        print(f'in process: {runs} runs of 3469×10 → CSV in {min(times):.3f} s best, {np.median(times):.3f} s median '
              f'of {repeats}')
        t = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name('paddy')), 'ensemble', '--data', str(data), '--name',
                        'cli'], cwd=root, check=True,
                       capture_output=True)
        print(f'the whole `paddy ensemble` command (Python start and imports too): {time.perf_counter() - t:.2f} s')
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('--repeats', type=int, default=5)
    a = ap.parse_args()
    main(a.runs, a.repeats)
