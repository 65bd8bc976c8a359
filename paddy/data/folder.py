"""The competition folder: finding it, reading train.csv and the test ids, and the validation split every run shares."""
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import environ
from ..errors import PaddyError
from ..workspace import COMPETITION, Workspace, here
from .mounts import mounts

LAYOUT = ('train_images', 'test_images', 'train.csv', 'sample_submission.csv')
HOW_TO_GET = (f"download it with `paddy download` (into {Workspace().competition()}/), or pass --data DIR or set "
              "PADDY_DATA")


def has_layout(path: Path) -> bool:
    return all((path / p).exists() for p in LAYOUT)


def find_data(data: str | Path | None = None, recorded: str | Path | None = None) -> Path:
    """The competition folder: `data`, else `recorded` (where an artefact was made) if it is still there, else
    $PADDY_DATA, else Kaggle's input folder, else `data/paddy-disease-classification`."""
    if data is None and recorded and Path(recorded).is_dir(): data = recorded
    if data is not None: path, src = Path(data), '--data'
    elif environ.data(): path, src = environ.data(), 'PADDY_DATA'
    elif kaggle := [p for p in mounts(COMPETITION) if has_layout(p)]: path, src = kaggle[0], 'Kaggle input'
    else: path, src = here().competition(), 'default'
    if not path.is_dir(): raise PaddyError(f"no competition data at {path} ({src}): {HOW_TO_GET}")
    missing = [p for p in LAYOUT if not (path / p).exists()]
    if missing:
        raise PaddyError(f"{path} lacks {', '.join(missing)}: it needs the competition's layout ({', '.join(LAYOUT)}); "
                         f"{HOW_TO_GET}")
    return path


def read_train(path: Path) -> pd.DataFrame:
    "train.csv with a `path` column; every listed image must exist."
    df = pd.read_csv(path / 'train.csv', dtype=str, keep_default_na=False)
    if not {'image_id', 'label'} <= set(df.columns):
        raise PaddyError(f"{path/'train.csv'} needs the columns image_id,label")
    df['path'] = [str(path / 'train_images' / l / i) for i, l in zip(df.image_id, df.label)]
    missing = [p for p in df.path if not os.path.exists(p)]
    if missing:
        raise PaddyError(f"{len(missing)} images in train.csv are not under train_images/<label>/, e.g. {missing[0]}: "
                         "re-extract the data")
    return df


def tst_items(path: Path) -> tuple[list[str], list[str]]:
    "Test ids and files, in the order of sample_submission.csv."
    ids = pd.read_csv(path / 'sample_submission.csv', dtype=str).image_id.tolist()
    files = [str(path / 'test_images' / i) for i in ids]
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise PaddyError(f"{len(missing)} images in sample_submission.csv are missing from test_images/, e.g. "
                         f"{missing[0]}: re-extract the data")
    return ids, files


def split_seed(seed: int | None) -> int:
    "The split's seed; `None` draws one, which the run records so its split can be rebuilt."
    return int(np.random.SeedSequence().entropy % 2**31) if seed is None else seed


def valid_ids(ids, seed: int, pct: float = 0.2) -> list[str]:
    "The validation ids for `seed`: the same for every experiment, whatever order `ids` come in."
    ids = sorted(ids)
    idx = np.random.default_rng(seed).permutation(len(ids))[:int(round(len(ids) * pct))]
    return sorted(ids[i] for i in idx)
