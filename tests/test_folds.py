"""The fold plan: stratified, seeded, the same on every machine and in any row order, saved once by its hash, and never
holding out a pseudo-labelled image; and log-loss weights, never worse than the plain mean."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paddy import folds as F
from paddy.errors import PaddyError
from paddy.files import Damaged
from paddy.selection import _nll, logloss
from paddy.workspace import Workspace


def table(n=(13, 7, 20), seed=0) -> pd.DataFrame:
    "A train.csv of unequal classes, in a shuffled order."
    rows = [(f'{label}{j:03d}.jpg', label) for label, k in zip('abc', n) for j in range(k)]
    df = pd.DataFrame(rows, columns=['image_id', 'label'])
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


def test_every_image_is_held_out_once_and_each_fold_is_stratified():
    df = table()
    plan = F.make(df, 5, 42)
    assert sorted(plan.image_id) == sorted(df.image_id) and set(plan.fold) == {1, 2, 3, 4, 5}
    sizes = plan.fold.value_counts()
    assert sizes.max() - sizes.min() <= 1  # 40 images: 8 a fold
    for label, n in zip('abc', (13, 7, 20)):
        per_fold = plan[plan.label == label].fold.value_counts().reindex(range(1, 6), fill_value=0)
        assert per_fold.max() - per_fold.min() <= 1 and per_fold.sum() == n, (label, per_fold.tolist())
    held = [F.held_out(plan, k) for k in range(1, 6)]
    assert sorted(sum(held, [])) == sorted(df.image_id)


def test_the_plan_is_stable_across_runs_row_orders_and_machines():
    a, b = F.make(table(seed=0), 5, 42), F.make(table(seed=1), 5, 42)
    assert F.digest(a) == F.digest(b) and a.equals(b)
    assert F.digest(F.make(table(), 5, 43)) != F.digest(a)  # another seed, another plan
    assert F.digest(F.make(table(), 4, 42)) != F.digest(a)
    # pinned: only sorted ids and numpy's PCG64 decide the plan, so this hash is the same on every machine; if this
    # fails, every saved plan (and every CV run's hash) changed
    assert F.digest(a) == '75fcec39538f'


def test_a_plan_is_saved_once_by_its_hash_and_a_damaged_one_is_refused(tmp_path):
    plan = F.make(table(), 5, 42)
    ws = Workspace(tmp_path)
    h = F.save(plan, ws)
    f = tmp_path / 'folds' / f'{h}.csv'
    before = f.stat().st_mtime_ns
    assert F.save(F.make(table(seed=3), 5, 42), ws) == h and f.stat().st_mtime_ns == before
    assert F.load(h, ws).equals(plan)
    f.write_text(f.read_text().replace(',1\n', ',2\n', 1))  # one image moved to another fold
    with pytest.raises(Damaged, match='no longer match its name'): F.load(h, ws)
    with pytest.raises(PaddyError, match='no fold plan'): F.load('000000000000', ws)


def test_pseudo_labelled_rows_are_never_held_out_and_leave_the_plan_unchanged():
    df = table()
    added = pd.DataFrame({'image_id': [f't{j}.jpg' for j in range(9)], 'label': 'a'})
    both = pd.concat([df.assign(pseudo='0'), added.assign(pseudo='1')], ignore_index=True)
    plan = F.make(both, 5, 42)
    assert not set(plan.image_id) & set(added.image_id)
    assert F.digest(plan) == F.digest(F.make(df, 5, 42))  # comparable OOF errors, with and without them
    F.check_data(plan, 'h', both, Path('.'))
    with pytest.raises(PaddyError, match='other images or labels'):
        F.check_data(plan, 'h', both.assign(label='b'), Path('.'))


def test_k_is_checked_against_the_smallest_class():
    with pytest.raises(PaddyError, match='give 2 or more'): F.make(table(), 1, 42)
    with pytest.raises(PaddyError, match='the smallest class, b, has 7 images'): F.make(table(), 8, 42)
    assert F.make(table(), 7, 42).fold.max() == 7


def test_log_loss_weights_are_never_worse_than_the_mean_and_find_the_better_member():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, 300)
    good = np.eye(4)[targets] * 0.6 + 0.1  # right with 0.7
    bad = rng.dirichlet(np.ones(4), 300)
    w, fit = logloss([good, bad], targets)
    mean = (good + bad) / 2
    assert w.sum() == pytest.approx(1) and w[0] > 0.8
    assert _nll(w[0] * good + w[1] * bad, targets) <= _nll(mean, targets)
    assert fit['logloss'] <= fit['mean_logloss'] == pytest.approx(_nll(mean, targets))
    w, _ = logloss([good, good], targets)  # nothing to gain: equal weights
    assert np.allclose(w, 0.5)
