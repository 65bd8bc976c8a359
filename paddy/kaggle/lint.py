"""The submission linter: a CSV Kaggle would score wrongly (or reject) is refused before anything is uploaded."""
import csv
from collections import Counter
from pathlib import Path

import pandas as pd

from ..data import find_data
from ..errors import PaddyError

HEADER = ['image_id', 'label']


def _few(xs, n=3) -> str:
    xs = list(xs)
    return ', '.join(map(str, xs[:n])) + (f' and {len(xs) - n} more' if len(xs) > n else '')


def problems(sub: Path, sample: Path, labels: list[str]) -> list[str]:
    "Everything wrong with submission `sub` against `sample` (ids and order) and the competition's `labels`."
    try:
        with open(sub, newline='') as f: rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        return [f"cannot read it as a CSV ({type(e).__name__}): write it with paddy ensemble"]
    if not rows: return ["it is empty: write it with paddy ensemble"]
    header, body = rows[0], rows[1:]
    out = []
    if header != HEADER:
        fix = ("drop the index column (to_csv(..., index=False))" if header[-2:] == HEADER and len(header) == 3
               else "the first line must be exactly image_id,label")
        out.append(f"its header is {','.join(header)!r}: {fix}")
        if not set(HEADER) <= set(header): return out
    i, j = header.index('image_id'), header.index('label')
    short = [n for n, r in enumerate(body, 2) if len(r) <= max(i, j)]
    if short: out.append(f"rows {_few(short)} have too few fields: every row is image_id,label")
    body = [r for r in body if len(r) > max(i, j)]
    ids, got = [r[i] for r in body], [r[j].strip() for r in body]
    want = pd.read_csv(sample, dtype=str).image_id.tolist()
    dups = [k for k, c in Counter(ids).items() if c > 1]
    if dups: out.append(f"{len(dups)} ids appear more than once ({_few(dups)}): keep one row per test image")
    missing, extra = set(want) - set(ids), set(ids) - set(want)
    if missing:
        out.append(f"{len(missing)} ids of {sample.name} are missing ({_few(sorted(missing))}): predict "
                   "every test image")
    if extra: out.append(f"{len(extra)} ids are not in {sample.name} ({_few(sorted(extra))}): keep only its ids")
    if not (missing or extra or dups) and ids != want:
        first = next(n for n, (a, b) in enumerate(zip(ids, want)) if a != b)
        out.append(f"its ids are not in {sample.name}'s order (row {first + 2} has {ids[first]}, expected "
                   f"{want[first]}): "
                   f"write the rows in that order (paddy ensemble does)")
    empty = [n for n, l in enumerate(got, 2) if not l]
    if empty: out.append(f"{len(empty)} rows have no label (rows {_few(empty)}): every test image needs one")
    unknown = Counter(l for l in got if l and l not in set(labels))
    if unknown:
        out.append(f"{sum(unknown.values())} labels are not the competition's ({_few(unknown)}): use one of "
                   f"{', '.join(labels)}")
    return out


def competition_labels(data: Path) -> list[str]:
    return sorted(pd.read_csv(data / 'train.csv', dtype=str).label.dropna().unique())


def check_submission(sub: Path, data: Path) -> int:
    "Raise one line per problem, or return the number of rows of a CSV that Kaggle will score as intended."
    sub = Path(sub)
    if not sub.is_file(): raise PaddyError(f"no file {sub}: write one with paddy ensemble")
    found = problems(sub, data / 'sample_submission.csv', competition_labels(data))
    if found: raise PaddyError('\n'.join(f'{sub}: {p}' for p in found))
    return len(pd.read_csv(sub, dtype=str))


def check_file(sub: Path, data=None) -> str:
    "`paddy check-submission`: `check_submission` against the competition folder in use, in words."
    return f'{sub}: {check_submission(sub, find_data(data))} rows, ready to submit'
