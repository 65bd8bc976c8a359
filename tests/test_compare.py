"""The paired bootstrap over a shared validation split, on synthetic predictions whose truth is known."""
import numpy as np
import pandas as pd
import pytest

from paddy.compare import noise, paired, right
from paddy.errors import PaddyError
from paddy.predict import save_preds


def correct(err: float, n: int, rng, ids=None) -> pd.Series:
    "Per-image correctness of a model of true error `err`."
    return pd.Series((rng.random(n) >= err).astype(float), index=ids or [f'i{k}.jpg' for k in range(n)])


def test_the_interval_of_a_difference_covers_the_true_one():
    # a model of error 0.30 against one of 0.22 on 400 shared images, where they agree on most (paired): the 95%
    # interval of the difference should hold the true 0.08 about 95 times in 100
    hits, trials = 0, 40
    for s in range(trials):
        rng = np.random.default_rng(s)
        u = rng.random(400)  # one difficulty per image: both models fail the hard ones
        a = pd.Series((u >= 0.30).astype(float), index=[f'i{k}' for k in range(400)])
        b = pd.Series((u >= 0.22).astype(float), index=a.index)
        flip = rng.random(400) < 0.1  # and some disagreement either way
        b[flip] = 1 - b[flip]
        true = 0.30 - (0.22 * 0.9 + 0.78 * 0.1)
        v = paired(a, b, draws=500, seed=s)
        hits += v['lo'] <= true <= v['hi']
    assert hits >= 0.85 * trials, hits


def test_identical_runs_are_indistinguishable_and_a_far_better_one_is_not():
    rng = np.random.default_rng(0)
    a = correct(0.4, 300, rng)
    t = noise({'a': a, 'a_again': a.copy(), 'good': correct(0.1, 300, rng)}, draws=500).set_index('member')
    assert t.loc['good', 'indistinguishable'] and t.loc['good', 'best'] == 'good'
    assert not t.loc['a', 'indistinguishable'] and not t.loc['a_again', 'indistinguishable']
    assert t.loc['a', 'lo'] < t.loc['a', 'error'] < t.loc['a', 'hi']
    same = noise({'a': a, 'a_again': a.copy()}, draws=500).set_index('member')
    assert same.indistinguishable.all() and (same['diff'] == 0).all()


def test_versus_counts_where_each_is_right_and_the_other_wrong():
    ids = [f'i{k}' for k in range(40)]
    a = pd.Series([1.0] * 30 + [0.0] * 10, index=ids)
    b = pd.Series([1.0] * 25 + [0.0] * 5 + [1.0] * 2 + [0.0] * 8, index=ids)
    v = paired(a, b, draws=200)
    assert (v['a_only'], v['b_only'], v['images']) == (5, 2, 40)
    assert v['diff'] == pytest.approx(10 / 40 - 13 / 40)
    with pytest.raises(PaddyError, match='share 0 validation images'):
        paired(a, pd.Series([1.0], index=['other']))


def test_right_reads_a_runs_tta_probabilities_and_averages_repeats(tmp_path):
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    common = dict(vocab=np.array(['x', 'y']), test_ids=np.array(['t']), test_probs=np.array([[0.5, 0.5]]),
                  valid_ids=np.array(['a', 'b', 'c']), valid_targets=np.array([0, 1, 1]))
    save_preds(tmp_path / 'r1.npz', 'r1', dict(common, valid_probs=probs))
    save_preds(tmp_path / 'r2.npz', 'r2', dict(common, valid_probs=probs[:, ::-1]))
    assert right([tmp_path / 'r1.npz']).tolist() == [1.0, 1.0, 0.0]
    assert right([tmp_path / 'r1.npz', tmp_path / 'r2.npz']).tolist() == [0.5, 0.5, 0.5]
