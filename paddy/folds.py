"""K-fold cross-validation's plan: the fold each training image is held out in, stratified by label and seeded, saved
once as `folds/<hash>.csv`, so every experiment with the same seed, K and data shares it and its runs combine."""
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import PaddyError
from .files import damaged, written_once
from .workspace import Workspace, here

COLUMNS = ['image_id', 'label', 'fold']


def is_pseudo(df: pd.DataFrame) -> np.ndarray:
    "Which rows `paddy pseudo` added (train.csv's `pseudo` is 1): they train, but are never held out."
    return (df['pseudo'].astype(str) == '1').values if 'pseudo' in df else np.zeros(len(df), bool)


def check_k(df: pd.DataFrame, k: int):
    "Raise unless every one of `k` folds can hold each class at least once."
    counts = df[~is_pseudo(df)].label.value_counts()
    if k < 2: raise PaddyError(f"--folds {k}: give 2 or more folds (5 is usual)")
    if k > counts.min():
        raise PaddyError(f"--folds {k}: the smallest class, {counts.idxmin()}, has {counts.min()} images, so a fold "
                         f"would hold none of it: give at most --folds {counts.min()}")


def make(df: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """Folds 1…k of `df`'s labelled rows (pseudo-labels aside), stratified: each label's ids, sorted and then shuffled
    by `seed`, are dealt in turn to the folds, each label starting where the last one stopped, so folds differ in size
    by one image at most. Only sorted ids and numpy's PCG64 decide it: the same on every machine, in any row order."""
    check_k(df, k)
    real = df[~is_pseudo(df)]
    rng, out, at = np.random.default_rng(seed), [], 0
    for label in sorted(real.label.unique()):
        ids = np.array(sorted(real.image_id[real.label == label]))[rng.permutation((real.label == label).sum())]
        out += [(i, label, (at + j) % k + 1) for j, i in enumerate(ids)]
        at += len(ids)
    return pd.DataFrame(out, columns=COLUMNS).sort_values('image_id', kind='stable').reset_index(drop=True)


def text(plan: pd.DataFrame) -> str: return plan[COLUMNS].to_csv(index=False, lineterminator='\n')


def digest(plan: pd.DataFrame) -> str:
    "The plan's name: a hash of its CSV, so that equal plans are one file and a changed file no longer matches it."
    return hashlib.sha256(text(plan).encode()).hexdigest()[:12]


def save(plan: pd.DataFrame, ws: Workspace | None = None) -> str:
    "Write `plan` as `folds/<hash>.csv` once (an equal plan is already there); its hash."
    h, ws = digest(plan), ws or here()
    f = ws.fold_plan(h)
    if not f.exists():
        try:
            with written_once(f) as tmp: tmp.write_text(text(plan))
        except PaddyError: pass  # another run wrote the same plan meanwhile: it is checked below, like any
    load(h, ws)
    return h


def load(h: str, ws: Workspace | None = None) -> pd.DataFrame:
    "The plan named `h`; a damaged or edited one is one line that says how to make it again."
    f = (ws or here()).fold_plan(h)
    fix = "delete it: the next `paddy train EXP --folds K` makes it again from the seed"
    if not f.is_file():
        raise PaddyError(f"no fold plan {f}: it was moved or deleted; `paddy train EXP --folds K` with the run's "
                         "seed makes it again")
    try:
        raw = f.read_bytes().decode()
        plan = pd.read_csv(f, dtype={'image_id': str, 'label': str}, keep_default_na=False)
        if list(plan.columns) != COLUMNS: raise ValueError(f"columns {','.join(plan.columns)}, not {','.join(COLUMNS)}")
        if plan.fold.dtype.kind != 'i' or plan.fold.min() < 1: raise ValueError("a fold that is not a number from 1")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e: raise damaged(f, e, fix) from None
    if hashlib.sha256(raw.encode()).hexdigest()[:12] != h:
        raise damaged(f, ValueError("its contents no longer match its name"), fix)
    return plan


def held_out(plan: pd.DataFrame, fold: int) -> list[str]:
    "The ids fold `fold` holds out: the validation set of the run that trains on every other fold."
    return sorted(plan.image_id[plan.fold == fold])


def check_data(plan: pd.DataFrame, h: str, df: pd.DataFrame, where: Path):
    "Raise unless plan `h` covers exactly the labelled (not pseudo-labelled) images of `df`, with their labels."
    real = df[~is_pseudo(df)].set_index('image_id').label
    if set(plan.image_id) != set(real.index) or (real[plan.image_id].values != plan.label.values).any():
        raise PaddyError(f"fold plan {h} was made for other images or labels than {where / 'train.csv'}: train on the "
                         "folder it was made for, or start a new CV run")
