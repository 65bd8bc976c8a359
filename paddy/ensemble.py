"""Average (or vote) saved TTA probabilities and write `submissions/<name>.csv` in sample_submission's order."""
import time
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd

from .data import find_data
from .errors import PaddyError
from .predict import error, load_preds, with_test
from .files import never_overwrite, open_new, read_json, replaced, sha256, write_json
from .provenance import stamp
from .selection import greedy, logloss
from .workspace import Workspace, here


def find_preds(patterns=(), ws: Workspace | None = None) -> list[Path]:
    "Prediction files whose run name matches a pattern (a run, a glob, or a path); all of them by default."
    preds = (ws or here()).preds
    found = sorted(preds.glob('*.npz'))
    if not patterns:
        if not found: raise PaddyError(f"no predictions in {preds}/: train a model first with `paddy train EXP`")
        return found
    out = []
    for pat in patterns:
        by_path = pat.endswith('.npz') and Path(pat).is_file()
        hits = [Path(pat)] if by_path else [p for p in found if fnmatch(p.stem, pat)]
        if not hits: raise PaddyError(f"no predictions match '{pat}' in {preds}/: see `ls {preds}`")
        out += [h for h in hits if h not in out]
    return out


def data_folder(f: Path) -> str:
    "The data folder a prediction file says it was made on ('' when it says none)."
    p = load_preds(f, ('data',))
    return str(p['data']) if 'data' in p else ''


def on_data_folder(ws: Workspace, data=None) -> list[Path]:
    """With no runs named: the runs predicted on the data folder in use (`data`, else the usual search), or, where no
    folder is in use, on the one folder they all share."""
    found, preds = find_preds((), ws), ws.preds
    where = {f: data_folder(f) for f in found}
    try: path = find_data(data)
    except PaddyError:
        folders = sorted(set(where.values()))
        if data is not None or len(folders) != 1: raise PaddyError(
            f"the runs in {preds}/ were predicted on {len(folders)} data folders "
            f"({', '.join(f or '(unrecorded)' for f in folders)}): pass --data DIR") from None
        path = find_data(folders[0])
    here = [f for f in found if where[f] == str(path.resolve())]
    ids = pd.read_csv(path / 'sample_submission.csv', dtype=str).image_id.tolist()
    away = [f for f in found if f not in here and predicted_on_a_copy(f, where[f], ids)]
    if not here + away:
        raise PaddyError(f"none of the {len(found)} runs in {preds}/ was predicted on {path}: pass --data with the "
                         f"folder they were (e.g. {next(iter(where.values())) or '?'}), or name the runs")
    others = len(found) - len(here) - len(away)
    print(f"taking the {len(here)} runs predicted on {path}"
          + (f" and {len(away)} predicted on its copy elsewhere "
             f"({', '.join(sorted({where[f] for f in away}))})" if away else '')
          + (f" ({others} others in {preds}/ were not)" if others else ''))
    return sorted(here + away)


def predicted_on_a_copy(f: Path, folder: str, ids: list[str]) -> bool:
    """Whether run file `f` was predicted on another machine's copy of the competition whose sample_submission.csv has
    `ids`, such as a Kaggle notebook's /kaggle/input: its folder is not here, and its test ids are `ids`."""
    if not folder or Path(folder).exists(): return False
    p = load_preds(f, ('test_ids',))
    return 'test_ids' in p and p['test_ids'].tolist() == ids


def combine(probs: list[np.ndarray], weights: np.ndarray, vote: bool = False) -> np.ndarray:
    "Weighted mean of `probs`; with `vote`, weighted votes for each member's top class (ties go to the mean)."
    mean = np.tensordot(weights, np.stack(probs), axes=1)
    if not vote: return mean
    votes = sum(w * np.eye(p.shape[1])[p.argmax(1)] for w, p in zip(weights, probs))
    return votes + 1e-6 * mean


def _check_members(members: dict[str, dict]):
    runs = list(members)
    vocabs = {r: m['vocab'].tolist() for r, m in members.items()}
    if any(v != vocabs[runs[0]] for v in vocabs.values()):
        raise PaddyError("runs have different vocabularies and cannot be averaged: "
                         + '; '.join(f"{r}: {','.join(v)}" for r, v in vocabs.items()))


def _check_tests(members: dict[str, dict]):
    runs = list(members)
    if any(not np.array_equal(m['test_ids'], members[runs[0]]['test_ids']) for m in members.values()):
        raise PaddyError("runs predicted different test sets: ensemble runs of one competition folder "
                         f"({', '.join(runs)})")


def split_of(m: dict) -> bytes:
    "A prediction file's validation split, as bytes that compare equal for equal splits; empty without one."
    return m['valid_ids'].tobytes() if 'valid_ids' in m else b''


def strays(members: dict[str, dict]) -> list[str]:
    "The runs off the validation split that most of `members` share, and every run without one."
    split = {r: split_of(m) for r, m in members.items()}
    common = Counter(split.values()).most_common(1)[0][0]
    return [r for r, s in split.items() if s != common or not s]


def shared_split(members: dict[str, dict]) -> bool: return not strays(members)


def recorded(name: str, ws: Workspace | None = None, keys=None) -> tuple[dict, list[dict]]:
    "Ensemble `name`'s record and its members' predictions (only `keys`, where given), as it was written."
    f = (ws or here()).ensemble_record(name)
    if not f.is_file(): raise PaddyError(f"no ensemble {f}: write one with `paddy ensemble … --name {name}`")
    meta = read_json(f, f"make the ensemble again with `paddy ensemble … --name {name}`")
    return meta, [load_preds(Path(p), keys) for p in meta['preds']]


def rebuilt(meta: dict, members: list[dict], part: str) -> np.ndarray:
    "An ensemble's probabilities of `part` (valid or test): its members' combined with its weights and method."
    return combine([m[f'{part}_probs'] for m in members], np.asarray(meta['weights']), meta.get('method') == 'vote')


def one_plan(members: dict[str, dict]):
    """Refuse to combine runs of different fold plans, or a CV run with a single-split run: their validation sets are
    not the same images, so no weights or error can be fitted on them together. A run without validation (a final fit
    that no CV run stands for, a prediction on other data) joins either."""
    planned = {r: str(m['folds']) for r, m in members.items() if 'folds' in m}
    if not planned: return
    first = next(iter(planned))
    for r, m in members.items():
        if r in planned and planned[r] != planned[first]:
            raise PaddyError(f"{first} was validated on fold plan {planned[first]} and {r} on {planned[r]}: only runs "
                             "of one fold plan ensemble together; train them with one seed and the same --folds K")
        if r not in planned and 'valid_ids' in m:
            raise PaddyError(f"{first} is a CV run (fold plan {planned[first]}) and {r} a single-split run, validated "
                             f"on other images: they do not ensemble together; train {r}'s experiment as a CV run with "
                             "`paddy train EXP --folds K`")


def choose(members: dict[str, dict], steps: int | None, select: str = 'greedy') -> tuple[np.ndarray, dict]:
    """The weights `select` fits on the shared validation split (out of fold, for CV runs): greedy selection's integer
    ones, printing each step, or log loss's; refuses runs that don't share one split."""
    bare = [r for r, m in members.items() if 'valid_ids' not in m and str(m.get('split', '')) == 'full']
    if bare:
        raise PaddyError(f"--select {select} chooses by validation, and {', '.join(bare)} trained on every image with "
                         "no CV run of its recipe to stand for it: train that experiment with --folds K first (its "
                         "next --full run names it), or drop --select")
    off = strays(members)
    if off:
        raise PaddyError(f"--select {select} needs runs that share one validation split, and {', '.join(off)} "
                         f"{'does' if len(off) == 1 else 'do'} not share the others': name runs of one split seed")
    first = next(iter(members.values()))
    runs = list(members)
    valid = [m['valid_probs'] for m in members.values()]
    if select == 'logloss':
        w, fit = logloss(valid, first['valid_targets'])
        print(f"log-loss weights: {', '.join(f'{r} {x:.3f}' for r, x in zip(runs, w))}; validation log loss "
              f"{fit['logloss']:.4f} (the plain mean's {fit['mean_logloss']:.4f})")
        return w, dict(method='logloss', weights=dict(zip(runs, w.tolist())), **fit)
    w, history = greedy(valid, first['valid_targets'], steps)
    for h in history:
        what = 'the plain mean is better' if h['added'] is None else f"+ {runs[h['added']]}"
        print(f"step {h['step']}: {what}: validation error {h['error']:.4f} with {h['members']} runs")
    return w, dict(method='greedy', weights=dict(zip(runs, w.tolist())),
                   steps=[dict(step=h['step'], added=None if h['added'] is None else runs[h['added']],
                               error=h['error']) for h in history])


SELECT = ('greedy', 'logloss')


def free_name(ws: Workspace) -> str:
    "ensemble-DATE-TIME, with -2, -3, … when ensembles started in the same second took it."
    base, k = time.strftime('ensemble-%Y%m%d-%H%M%S'), 1
    name = base
    while ws.submission(name).exists() or ws.ensemble_record(name).exists(): k += 1; name = f'{base}-{k}'
    return name


def write_new(sub: pd.DataFrame, csv: Path, named: bool, ws: Workspace) -> Path:
    "Write `sub` to `csv`, never over a file; a default name taken meanwhile by another ensemble moves to the next."
    while True:
        try:
            with open_new(csv, hint='pass --name OTHER') as f: sub.to_csv(f, index=False)
            return csv
        except PaddyError:
            if named: raise
            csv = ws.submission(free_name(ws))


def who_is_apart(members: dict[str, dict]) -> str:
    "Which runs keep the others from sharing one validation split, in words."
    none = [r for r, m in members.items() if not split_of(m)]
    if none: return f"{', '.join(none)} {'has' if len(none) == 1 else 'have'} none"
    return f"{len({split_of(m) for m in members.values()})} splits among {', '.join(members)}"


def parse_weights(text: str | None) -> list[float] | None:
    "`--weights 2,1,1` as numbers."
    if text is None: return None
    try: return [float(x) for x in text.split(',')]
    except ValueError:
        raise PaddyError(f"--weights {text}: give numbers separated by commas, e.g. --weights 2,1") from None


def ensemble(patterns=(), weights=None, vote: bool = False, name: str | None = None, data=None,
             ws: Workspace | None = None, replace: bool = False, select: str | None = None,
             steps: int | None = None) -> dict:
    """Ensemble the runs matching `patterns` into `submissions/<name>.csv`, with its provenance beside it.
    `select='greedy'` picks members and integer weights on the shared validation split instead of `weights`, and
    `select='logloss'` fits weights that minimise its log loss; on CV runs, that split is their out-of-fold one."""
    if isinstance(weights, str): weights = parse_weights(weights)
    if select not in (None, *SELECT):
        raise PaddyError(f"--select {select}: choose {' or '.join(SELECT)}")
    if select and (weights is not None or vote):
        raise PaddyError(f"--select {select} chooses the weights itself: drop --weights and --vote")
    ws = ws or here()
    named, name = name is not None, name or free_name(ws)
    csv = ws.submission(name)
    if not replace: never_overwrite(csv, ws.ensemble_record(name), hint='pass --name OTHER')  # before any work
    files = find_preds(patterns, ws) if patterns else on_data_folder(ws, data)
    members = {f.stem: load_preds(f) for f in files}  # keyed by file: one run may have several predictions
    _check_members(members)
    one_plan(members)
    chosen = None
    if select: weights, chosen = choose(members, steps, select)
    w = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != len(members) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise PaddyError(f"--weights needs {len(members)} non-negative numbers, one per run ({', '.join(members)}), "
                         "finite and not all of them 0")
    w = w / w.sum()
    if select:  # the members are the runs it chose; the candidates and their weights stay in `chosen`
        keep, runs = [k for k, x in enumerate(w) if x > 0], list(members)
        members, files, w = {runs[k]: members[runs[k]] for k in keep}, [files[k] for k in keep], w[keep]
    # a run only screened made no test predictions: made now, once, for the members alone
    members = {r: with_test(f, m, ws) for (r, m), f in zip(members.items(), files)}
    _check_tests(members)
    method = 'vote' if vote else select or 'mean'
    folders = {str(m.get('data', '')) for m in members.values()}
    path = find_data(data, folders.pop() if len(folders) == 1 else None)  # by default, where they were predicted
    sample = pd.read_csv(path / 'sample_submission.csv', dtype=str)
    first = next(iter(members.values()))
    if first['test_ids'].tolist() != sample.image_id.tolist():
        raise PaddyError(f"the runs' test ids differ from {path/'sample_submission.csv'}: ensemble them with --data "
                         "set to the folder they were predicted on")
    vocab = first['vocab']
    probs = combine([m['test_probs'] for m in members.values()], w, vote)
    sub = pd.DataFrame({'image_id': sample.image_id, 'label': vocab[probs.argmax(1)]})
    report = {'members': {r: error(m) for r, m in members.items()}, 'ensemble': None}
    if shared_split(members) and all(v is not None for v in report['members'].values()):
        report['ensemble'] = error(first, combine([m['valid_probs'] for m in members.values()], w, vote))
        for r, e in report['members'].items(): print(f'{e:.4f}  {r}')
        print(f"{report['ensemble']:.4f}  ensemble of {int((w > 0).sum())} ({method}), validation error")
    else: print(f"the runs do not share one validation split ({who_is_apart(members)}), so no ensemble validation "
                "error is given")
    ws.submissions.mkdir(parents=True, exist_ok=True)
    if replace:  # whole or not at all: a kill mid-write leaves the old file, never half of the new one
        with replaced(csv) as tmp: sub.to_csv(tmp, index=False)
    else: csv = write_new(sub, csv, named, ws)
    name = csv.stem
    meta = dict(name=name, csv=str(csv), sha256=sha256(csv), method=method,
                runs=[str(m['run']) for m in members.values()],
                weights=w.tolist(), selection=chosen, preds=[str(f) for f in files], valid_error=report,
                data=str(path.resolve()), **stamp())
    write_json(ws.ensemble_record(name), meta, replace=replace)
    print(f'wrote {csv} ({len(sub)} rows)')
    return meta
