"""Greedy ensemble selection: it finds the useful members, leans toward fewer, and never loses to the plain mean."""
import numpy as np
import pytest

from paddy.selection import greedy


def onehot(pred, k=3, p=0.8):
    out = np.full((len(pred), k), (1 - p) / (k - 1))
    out[np.arange(len(pred)), pred] = p
    return out


def test_it_picks_the_good_member_and_not_the_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    good, noise = onehot(y), [onehot(rng.integers(0, 3, 200)) for _ in range(3)]
    w, history = greedy([noise[0], good, noise[1], noise[2]], y)
    assert w.tolist() == [0, history[0]['weights'][1], 0, 0]
    assert w[1] >= 1
    assert history[0]['added'] == 1
    assert history[0]['error'] == 0


def test_ties_go_to_fewer_members():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 100)
    a = onehot(y)
    w, _ = greedy([a, a.copy(), a.copy()], y, steps=6)
    assert (w > 0).sum() == 1  # identical members: one is enough


def test_where_the_mean_is_better_the_mean_is_taken():
    y = np.zeros(3, int)
    # three members, each wrong on a different third: alone 1/3 error, together right everywhere
    members = [np.array([[0.4, 0.6], [0.6, 0.4], [0.6, 0.4]])[np.roll(np.arange(3), i)] for i in range(3)]
    w, history = greedy(members, y, steps=1)
    assert history[0]['error'] == pytest.approx(1 / 3) and w.tolist() == [1, 1, 1] and history[-1]['step'] == 'mean'
    w, history = greedy(members, y)  # given the steps, greedy finds as good a mix itself
    assert (np.tensordot(w, np.stack(members), axes=1).argmax(1) == y).all()
