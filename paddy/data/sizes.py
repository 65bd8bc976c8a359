"""The size census: every image's width and height from its header alone, in parallel, as Road to the Top's first part
did."""
import os
from pathlib import Path

import pandas as pd
from PIL import Image

from .folder import find_data, read_train
from .pool import pmap


def header(fn) -> tuple[int, int]:
    "(width, height) from the file's header: PIL reads no pixels until asked."
    with Image.open(fn) as im: return im.size


def headers(files: list[str], workers: int = 0, desc: str = 'sizes') -> list[tuple[int, int]]:
    "`header` of every file, over `workers` processes, with a progress bar on a terminal."
    return pmap(header, files, workers, desc)


def census(path: Path, workers: int | None = None) -> pd.DataFrame:
    """One row per image of `path`'s train_images/ (per train.csv) and test_images/: split, image_id, width, height,
    orientation."""
    workers = (os.cpu_count() or 1) if workers is None else workers
    trn = read_train(path)
    tst = sorted(p for p in (path / 'test_images').iterdir() if p.is_file() and not p.name.startswith('.'))
    df = pd.DataFrame({'split': ['train'] * len(trn) + ['test'] * len(tst),
                       'image_id': list(trn.image_id) + [p.name for p in tst],
                       'path': list(trn.path) + [str(p) for p in tst]})
    df['width'], df['height'] = zip(*headers(df.path.tolist(), workers)) if len(df) else ((), ())
    df['orientation'] = orientation(df.width, df.height)
    return df


def orientation(w, h) -> pd.Series:
    import numpy as np
    w, h = np.asarray(w), np.asarray(h)
    return pd.Series(np.where(h > w, 'portrait', np.where(w > h, 'landscape', 'square')))


def summary(df: pd.DataFrame, odd: int = 20) -> str:
    "Counts per W×H and per orientation for each split, then the images not of the commonest size, by id."
    df = df.assign(size=df.width.astype(str) + '×' + df.height.astype(str))
    lines = []
    for split, g in df.groupby('split', sort=False):
        lines.append(f'{split}: {len(g)} images')
        lines += [f'  {s:>11}  {n:6d}' for s, n in g['size'].value_counts().items()]
        lines += [f'  {o:>11}  {n:6d}' for o, n in g.orientation.value_counts().items()]
    common = df['size'].mode().iloc[0] if len(df) else None
    rest = df[df['size'] != common]
    if len(rest):
        lines.append(f'{len(rest)} not {common}:')
        lines += [f'  {r.split:5} {r.image_id}  {r.size} {r.orientation}' for r in rest.head(odd).itertuples()]
        if len(rest) > odd: lines.append(f'  … and {len(rest) - odd} more')
    return '\n'.join(lines)


def against(df: pd.DataFrame, item_size, workers: int = 0) -> str | None:
    """A warning when a rectangular `item_size` (rows, cols) will meet images of the other orientation among
    `read_train`'s `df`, else None. A square `item_size` reads no headers."""
    rows, cols = (item_size, item_size) if isinstance(item_size, int) else item_size
    if rows == cols: return None
    want = 'portrait' if rows > cols else 'landscape'
    w, h = zip(*headers(df.path.tolist(), workers)) if len(df) else ((), ())
    o = orientation(w, h).values
    odd = df[(o != want) & (o != 'square')]
    if not len(odd): return None
    ids = ', '.join(odd.image_id.head(5)) + (' …' if len(odd) > 5 else '')
    return (f"{len(odd)} training images are not {want} like item_size {(rows, cols)}, so they will be squished "
            f"({ids}): see `paddy sizes`, rotate them, or use a square item_size")


def report(data=None, odd: int = 20) -> str:
    "`paddy sizes`: the census of the competition folder in use, in words."
    return summary(census(find_data(data)), odd)
