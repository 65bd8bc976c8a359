"""Pseudo-labels: a data folder that links the competition's images and adds the test images an ensemble is confident
about, under the labels it predicts, marked `pseudo=1` in train.csv. Training on it, a CV run never holds one out."""
import json, os, shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .data import find_data, read_train
from .ensemble import rebuilt, recorded
from .errors import PaddyError
from .files import folder_once, never_overwrite, sha256
from .folds import is_pseudo
from .provenance import stamp
from .workspace import Workspace, here


def confident(probs: np.ndarray, threshold: float, cap: int) -> np.ndarray:
    "Indices of the rows whose top probability is at least `threshold`, the most confident first, at most `cap`."
    top = probs.max(1)
    order = np.argsort(-top, kind='stable')
    return order[top[order] >= threshold][:cap]


def check_threshold(threshold: float, max_share: float):
    if not 0 < threshold < 1:
        raise PaddyError(f"--threshold {threshold:g}: give a probability between 0 and 1, e.g. --threshold 0.95")
    if not 0 < max_share <= 1:
        raise PaddyError(f"--max-share {max_share:g}: give the largest share of the training set to add, above 0 "
                         "and at most 1, e.g. --max-share 0.2")


def test_probs(name: str, ws: Workspace) -> tuple[dict, np.ndarray]:
    "Ensemble `name`'s record and its test probabilities, its members' combined with its weights."
    meta, members = recorded(name, ws, ('vocab', 'test_ids', 'test_probs'))
    if meta.get('method') == 'vote':
        raise PaddyError(f"{name} is a vote, whose scores are not probabilities: pseudo-label from a mean, greedy or "
                         "logloss ensemble")
    meta['vocab'], meta['test_ids'] = members[0]['vocab'].tolist(), members[0]['test_ids'].tolist()
    return meta, rebuilt(meta, members, 'test')


def pseudo(ensemble: str, dest: Path, threshold: float = 0.95, max_share: float = 0.2, data=None,
           ws: Workspace | None = None) -> dict:
    """Write `dest`: the data folder of `ensemble` with its test images whose ensemble probability reaches `threshold`
    added to train_images/<predicted label>/, at most `max_share` of the labelled training images, most confident
    first. Every image is a symbolic link to the original; the folder is built beside `dest` and renamed into place
    whole."""
    check_threshold(threshold, max_share)
    dest = Path(dest)
    never_overwrite(dest, hint='pass another --dest')
    meta, probs = test_probs(ensemble, ws or here())
    path = find_data(data, meta.get('data'))
    df = read_train(path)
    sample = pd.read_csv(path / 'sample_submission.csv', dtype=str)
    if sample.image_id.tolist() != meta['test_ids']:
        raise PaddyError(f"{ensemble} predicted other test images than {path / 'sample_submission.csv'}: pass --data "
                         "with the folder it was made on")
    n_real = int((~is_pseudo(df)).sum())
    ids, vocab = np.array(meta['test_ids']), np.array(meta['vocab'])
    fresh = ~np.isin(ids, df.image_id)  # a folder pseudo-labelled before keeps its added images once
    picked = [i for i in confident(probs, threshold, int(max_share * n_real)) if fresh[i]]
    clash = set(ids[picked]) & set(df.image_id)
    if clash: raise PaddyError(f"test image {sorted(clash)[0]} has a training image's name: rename one of them")
    added = pd.DataFrame({'image_id': ids[picked], 'label': vocab[probs[picked].argmax(1)]})
    with folder_once(dest, hint='pass another --dest') as tmp:
        for label in sorted(set(df.label) | set(added.label)): (tmp / 'train_images' / label).mkdir(parents=True)
        for i, label, src in zip(df.image_id, df.label, df.path):
            os.symlink(Path(src).resolve(), tmp / 'train_images' / label / i)
        for i, label in zip(added.image_id, added.label):
            os.symlink((path / 'test_images' / i).resolve(), tmp / 'train_images' / label / i)
        os.symlink((path / 'test_images').resolve(), tmp / 'test_images')
        shutil.copyfile(path / 'sample_submission.csv', tmp / 'sample_submission.csv')
        rows = df.drop(columns='path').assign(pseudo=np.where(is_pseudo(df), 1, 0))
        new = added.assign(**{c: '' for c in rows.columns if c not in (*added, 'pseudo')}, pseudo=1)[rows.columns]
        pd.concat([rows, new], ignore_index=True).to_csv(tmp / 'train.csv', index=False)
        record = dict(ensemble=ensemble, ensemble_sha256=meta.get('sha256'), data=str(path.resolve()),
                      threshold=threshold, max_share=max_share, n_train=n_real, n_added=len(added),
                      confident=int((probs.max(1) >= threshold).sum()), per_label=added.label.value_counts().to_dict(),
                      train_csv_sha256=sha256(tmp / 'train.csv'), **stamp())
        (tmp / 'pseudo.json').write_text(json.dumps(record, indent=1, default=str))
    print(f"{dest}: {n_real} training images and {len(added)} pseudo-labelled test images ({record['confident']} of "
          f"{len(ids)} reached {threshold:g}, at most {max_share:g} × {n_real}); train on it with --data {dest}")
    return record
