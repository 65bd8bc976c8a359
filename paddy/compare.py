"""Which differences are noise: a paired bootstrap over the validation images that runs share. Every run validates on
one fixed-seed split (or a CV run on every image, out of fold), so two runs can be compared image by image; resampling
those images gives each one's error an interval, and the difference from the best its own."""
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import PaddyError
from .predict import load_preds

DRAWS, LEVEL, MIN_SHARED = 2000, 0.95, 30


def right(pred_files: list[Path]) -> pd.Series:
    """Per validation image, the share of `pred_files` (repeats of one experiment) that got it right, from their TTA
    probabilities, on the images they all hold."""
    cols = []
    for f in pred_files:
        p = load_preds(f, ('valid_ids', 'valid_probs', 'valid_targets'))
        if 'valid_ids' not in p: continue
        cols.append(pd.Series((p['valid_probs'].argmax(1) == p['valid_targets']).astype(float),
                              index=p['valid_ids'].astype(str)))
    if not cols: return pd.Series(dtype=float)
    return pd.concat(cols, axis=1, join='inner').mean(axis=1)


def _draws(n: int, draws: int, seed: int):
    "Bootstrap weights: how often each of `n` images is drawn, in chunks of draws, so memory stays small."
    rng = np.random.default_rng(seed)
    for start in range(0, draws, 256): yield rng.multinomial(n, np.full(n, 1 / n), size=min(256, draws - start))


def errors(m: np.ndarray, draws: int = DRAWS, seed: int = 0) -> np.ndarray:
    "Bootstrap errors (draws × members) of the rows of correctness matrix `m` (members × images), resampled together."
    n = m.shape[1]
    return np.concatenate([1 - w @ m.T / n for w in _draws(n, draws, seed)])


def interval(x: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return float(lo), float(hi)


def noise(members: dict[str, pd.Series], draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> pd.DataFrame:
    """One row per member (a name → per-image correctness): its error and `level` interval, and against the member of
    lowest error, the paired difference, its interval, and whether the two are indistinguishable (the interval holds
    0). A member that shares fewer than `MIN_SHARED` images with the best is not compared (None)."""
    members = {k: v for k, v in members.items() if len(v)}
    if not members: return pd.DataFrame(columns=COLUMNS)
    err = {k: 1 - v.mean() for k, v in members.items()}
    best = min(err, key=err.get)
    rows = []
    for k, v in members.items():
        lo, hi = interval(errors(v.values[None], draws, seed)[:, 0], level)
        shared = v.index.intersection(members[best].index)
        row = dict(member=k, images=len(v), error=err[k], lo=lo, hi=hi, best=best, shared=len(shared),
                   diff=None, diff_lo=None, diff_hi=None, indistinguishable=None)
        if k == best: row.update(diff=0.0, diff_lo=0.0, diff_hi=0.0, indistinguishable=True)
        elif len(shared) >= MIN_SHARED:
            m = np.stack([v[shared].values, members[best][shared].values])
            e = errors(m, draws, seed)
            dlo, dhi = interval(e[:, 0] - e[:, 1], level)  # this member's error less the best's
            row.update(diff=float(m[1].mean() - m[0].mean()), diff_lo=dlo, diff_hi=dhi, indistinguishable=dlo <= 0)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


COLUMNS = ['member', 'images', 'error', 'lo', 'hi', 'best', 'shared', 'diff', 'diff_lo', 'diff_hi',
           'indistinguishable']


def paired(a: pd.Series, b: pd.Series, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> dict:
    """`a`'s error less `b`'s on the images both hold, with its `level` interval, and on how many images each is right
    where the other is wrong."""
    shared = a.index.intersection(b.index)
    if len(shared) < MIN_SHARED:
        raise PaddyError(f"the two share {len(shared)} validation images, fewer than {MIN_SHARED}: compare runs of one "
                         "split (the same seed), or CV runs")
    m = np.stack([a[shared].values, b[shared].values])
    e = errors(m, draws, seed)
    lo, hi = interval(e[:, 0] - e[:, 1], level)
    return dict(images=len(shared), diff=float(m[1].mean() - m[0].mean()), lo=lo, hi=hi,
                a_only=int(((m[0] == 1) & (m[1] == 0)).sum()), b_only=int(((m[1] == 1) & (m[0] == 0)).sum()),
                indistinguishable=lo <= 0 <= hi)
