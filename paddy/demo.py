"""The offline demo: scikit-learn's real handwritten digits, laid out like the competition, through the pipeline."""
from pathlib import Path

import numpy as np
import pandas as pd

from .ensemble import ensemble
from .predict import load_preds
from .spec import load
from .tables import table_text
from .train import Settings, train
from .workspace import Workspace, here

LABELS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine']
EXPERIMENTS = ('demo_lite0', 'demo_scratch')
SIDE = 64  # the 8×8 digits, upsampled so convnets have something to downsample


def build_digits(root: Path, test_pct: float = 0.2, seed: int = 0) -> Path:
    """Write `load_digits()` as train_images/<label>/, test_images/, train.csv, sample_submission.csv and
    test_labels.csv."""
    from PIL import Image
    from sklearn.datasets import load_digits
    if (root / 'test_labels.csv').exists(): return root  # written last, so its presence means complete
    X, y = load_digits(return_X_y=True)
    ids = [f'{100001 + i}.jpg' for i in range(len(y))]
    test = np.zeros(len(y), bool)
    test[np.random.default_rng(seed).permutation(len(y))[:int(len(y) * test_pct)]] = True
    for i, (img, label, is_test) in enumerate(zip(X, y, test)):
        folder = root / 'test_images' if is_test else root / 'train_images' / LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        pix = Image.fromarray((img.reshape(8, 8) * 255 / 16).astype(np.uint8)).resize((SIDE, SIDE), Image.BILINEAR)
        pix.convert('RGB').save(folder / ids[i], quality=95)
    df = pd.DataFrame({'image_id': ids, 'label': [LABELS[l] for l in y], 'variety': '', 'age': ''})
    df[~test].to_csv(root / 'train.csv', index=False)
    df[test].assign(label='normal')[['image_id', 'label']].to_csv(root / 'sample_submission.csv', index=False)
    df[test][['image_id', 'label']].to_csv(root / 'test_labels.csv', index=False)
    return root


def accuracy(labels, root: Path) -> float:
    "Accuracy of `labels` (in sample_submission order) against the held-aside test labels."
    truth = pd.read_csv(root / 'test_labels.csv', dtype=str).label.to_numpy()
    return float((np.asarray(labels) == truth).mean())


def demo(root: Path | None = None, overrides=(), ws: Workspace | None = None,
         data_only: bool = False) -> pd.DataFrame | None:
    """Build the digits (in data/demo unless `root`), train the demo experiments, ensemble them into
    submissions/demo.csv; return the score table. `data_only` stops once the digits are laid out."""
    ws = ws or here()
    path = build_digits(root or ws.demo_data())
    if data_only:
        print(f"{path}: the digits in the competition's layout")
        return None
    metas = [train(load(e, overrides), Settings(data=str(path)), ws) for e in EXPERIMENTS]
    files = [str(ws.probs(m['run'])) for m in metas]
    # the demo always writes submissions/demo.csv, so rerunning it replaces its own last result
    sub = ensemble(files, name='demo', data=path, ws=ws, replace=True)
    rows = []
    for m, f in zip(metas, files):
        p = load_preds(Path(f))
        rows.append(dict(model=m['run'], weights=m['weights'].split(' sha256')[0], valid_acc=1 - m['tta_error_rate'],
                         test_acc=accuracy(p['vocab'][p['test_probs'].argmax(1)], path)))
    # the ensemble is scored from the CSV itself: that file is what would be submitted
    rows.append(dict(model='ensemble', weights='mean', valid_acc=1 - sub['valid_error']['ensemble'],
                     test_acc=accuracy(pd.read_csv(sub['csv'], dtype=str).label, path)))
    table = pd.DataFrame(rows)
    print(f"\n{table_text(table)}\n\nwrote {sub['csv']}; test labels held aside in "
          f"{path/'test_labels.csv'}")
    return table
