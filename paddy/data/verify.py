"""`paddy check`: a competition folder checked before hours of training, one line per problem. The fast form reads
each image's header and its end marker (a truncated JPEG lacks it); `deep` decodes every pixel, in parallel."""
import hashlib, os, sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from ..errors import PaddyError
from .folder import HOW_TO_GET, LAYOUT, find_data
from .loaders import num_workers
from .pool import pmap

TAIL = 1024  # a JPEG's end-of-image marker sits in its last bytes; scan data can never hold 0xFFD9 (0xFF is stuffed)


@dataclass(frozen=True)
class Problem:
    where: str
    what: str
    fatal: bool = True
    n: int = 1  # how many problems this line stands for

    def __str__(self): return f"{self.where}: {self.what}"


def listed(problems: list[Problem], what: str, most: int = 20) -> list[Problem]:
    "The first `most` of a long list of like problems, then one line that counts the rest."
    if len(problems) <= most: return problems
    rest = len(problems) - most
    return problems[:most] + [Problem('…', f'and {rest} more {what}: re-extract the data', n=rest)]


def look(fn: str, deep: bool = False) -> tuple[str | None, str | None]:
    "(what is wrong, mode) for image `fn`: the fast form reads its header and end; `deep` decodes it whole."
    try:
        with Image.open(fn) as im:
            mode, fmt = im.mode, im.format
            if deep: im.load()
    except Exception as e: return f"unreadable ({type(e).__name__}: {str(e).splitlines()[0][:80]})", None
    if not deep:
        with open(fn, 'rb') as f:
            f.seek(max(0, os.path.getsize(fn) - TAIL))
            tail = f.read()
        if fmt == 'JPEG' and b'\xff\xd9' not in tail: return 'truncated (no JPEG end-of-image marker)', mode
        if fmt == 'PNG' and b'IEND' not in tail: return 'truncated (no PNG end chunk)', mode
    return None, f'{mode} {fmt}'


def _look(job): return look(*job)


def images(files: list[str], deep: bool, workers: int) -> list[tuple[str | None, str | None]]:
    return pmap(_look, [(f, deep) for f in files], workers, 'check --deep' if deep else 'check')


def verify(path: Path, deep: bool = False, workers: int = 0) -> list[Problem]:
    "Every problem of competition folder `path`; the non-fatal ones (images paddy converts to RGB) are notes."
    missing = [p for p in LAYOUT if not (path / p).exists()]
    if missing: return [Problem(str(path), f"lacks {', '.join(missing)}: {HOW_TO_GET}")]
    out = []
    trn = path / 'train_images'
    try: df = pd.read_csv(path / 'train.csv', dtype=str, keep_default_na=False)
    except Exception as e:
        return [Problem(str(path / 'train.csv'), f"cannot be read as a CSV ({type(e).__name__}): re-extract the data")]
    if not {'image_id', 'label'} <= set(df.columns):
        return [Problem(str(path / 'train.csv'),
                        f"has columns {','.join(df.columns)}, not image_id,label: re-extract the data")]
    on_disk = {p.name: p.parent.name for p in trn.glob('*/*') if p.is_file() and not p.name.startswith('.')}
    folders = sorted(p.name for p in trn.iterdir() if p.is_dir())
    for label in sorted(set(df.label) - set(folders)):
        out.append(Problem('train.csv',
                           f"label '{label}' has no folder train_images/{label}/: re-extract the data or "
                           "fix train.csv"))
    for label in folders:
        if not any((trn / label).iterdir()):
            out.append(Problem(f'train_images/{label}/', 'holds no images: remove the folder or re-extract the data'))
    for r in df.itertuples():
        where = on_disk.get(r.image_id)
        if where is None and r.label not in folders: continue  # its label's missing folder is named once above
        if where is None:
            out.append(Problem('train.csv',
                               f"{r.image_id} ({r.label}) is not under train_images/: re-extract the data or "
                               "drop the row"))
        elif where != r.label:
            out.append(Problem('train.csv',
                               f"{r.image_id} is labelled {r.label} but lies in train_images/{where}/: move it "
                               "or fix the row"))
    for i in sorted(set(on_disk) - set(df.image_id)):
        out.append(Problem(f'train_images/{on_disk[i]}/{i}', 'is not in train.csv: add a row for it or remove it',
                           fatal=False))
    tst = sorted(p.name for p in (path / 'test_images').iterdir() if p.is_file() and not p.name.startswith('.'))
    if not tst: out.append(Problem('test_images/', 'is empty: re-extract the data'))
    sample = pd.read_csv(path / 'sample_submission.csv', dtype=str)
    ids = sample.image_id.tolist() if 'image_id' in sample else []
    if tst:  # an empty folder is one problem, said above, not one per id
        out += listed([Problem('sample_submission.csv', f"{i} is not in test_images/: re-extract the data")
                       for i in sorted(set(ids) - set(tst))], 'ids of sample_submission.csv are not in test_images/')
    out += listed([Problem(f'test_images/{i}', 'is not in sample_submission.csv: remove it or re-extract the data')
                   for i in sorted(set(tst) - set(ids))], 'images in test_images/ are not in sample_submission.csv')
    files = [str(trn / on_disk[i] / i) for i in sorted(on_disk)] + [str(path / 'test_images' / i) for i in tst]
    for f, (bad, mode) in zip(files, images(files, deep, workers)):
        rel = str(Path(f).relative_to(path))
        if bad: out.append(Problem(rel, f"{bad}: replace it (re-download) or remove it and its row"))
        elif mode and mode != 'RGB JPEG':
            out.append(Problem(rel,
                               "is {1} in mode {0}, not an RGB JPEG: paddy converts it to RGB".format(*mode.split()),
                               fatal=False))
    return out


def fatal_only(problems: list[Problem]) -> list[Problem]:
    "Print the notes among `problems` (what paddy handles itself); return the rest."
    for p in problems:
        if not p.fatal: print(f'note: {p}', file=sys.stderr)
    return [p for p in problems if p.fatal]


_PASSED = set()  # the folders, as they were, that this process has checked and found fine


def contents(path: Path) -> str:
    "A digest of every file under `path` by name, size and modification time: it changes when any of them does."
    h = hashlib.sha256(str(Path(path).resolve()).encode())
    for root, dirs, files in os.walk(path, followlinks=True):  # a pseudo-labelled folder links its test images
        dirs.sort()
        for f in sorted(files):
            st = os.stat(os.path.join(root, f))
            h.update(f'{root}/{f}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
    return h.hexdigest()


def ensure(path: Path, workers: int = 0):
    """The fast check before training, once a process for a folder as it is (a CV run's folds, a playbook's stages):
    raise with every fatal problem, one a line, and their count; print the notes."""
    seen = contents(path)
    if seen in _PASSED: return
    bad = fatal_only(verify(path, workers=workers))
    if bad:
        total = f"{sum(p.n for p in bad)} problems in {path}: see `paddy check --deep --data {path}`"
        raise PaddyError('\n'.join([str(p) for p in bad] + [total]))
    _PASSED.add(seen)


def check_folder(data=None, deep: bool = False) -> str:
    "`paddy check`: print the notes, raise with the problems one a line, or say the folder in use is fine."
    path = find_data(data)
    problems = verify(path, deep=deep, workers=num_workers())
    bad = fatal_only(problems)
    if bad: raise PaddyError('\n'.join(map(str, bad)))
    return (f"{path}: no problems{' (every image decoded)' if deep else ''}"
            + (f', {len(problems)} notes' if problems else ''))
