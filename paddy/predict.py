"""TTA probabilities on the shared validation split and the test set, saved so ensembling never reloads a model."""
import os, time, warnings
from pathlib import Path

import numpy as np

from .data import find_data, num_workers, read_train, tst_items
from .errors import PaddyError
from .files import damaged, is_run_name, never_overwrite, open_new, replaced
from .record import read_record, write_record
from .workspace import Workspace, here


def tta(learn, files, n: int = 4) -> np.ndarray:
    "fastai's `Learner.tta` over image `files`: the mean of `n` augmented passes, blended with the plain one."
    dl = learn.dls.test_dl(list(files), num_workers=num_workers())
    with learn.no_logging(): probs, _ = learn.tta(dl=dl, n=n)  # else each pass prints an empty epoch table
    return probs.float().numpy()


def disease_vocab(dls) -> list:
    "The disease labels: the DataLoaders' vocab, or its first when a variety head adds a second target."
    v = dls.vocab
    return v if isinstance(v[0], str) else v[0]


def tta_preds(learn, path: Path, valid: list[str], df=None, test: bool = True, seconds: dict | None = None) -> dict:
    """TTA probabilities for the `valid` ids of `path`'s train.csv `df` (when it holds them) and, with `test`, for its
    test set; the seconds of each go into `seconds` as `tta_valid` and `tta_test`."""
    vocab = [str(v) for v in disease_vocab(learn.dls)]
    df = (read_train(path) if df is None else df).set_index('image_id')
    out = {'vocab': np.array(vocab), 'data': np.array(str(path.resolve()))}  # so ensembling finds sample_submission.csv
    seconds = {} if seconds is None else seconds
    if valid and set(valid) <= set(df.index) and set(df.loc[valid].label) <= set(vocab):
        rows, t0 = df.loc[valid], time.perf_counter()
        print(f'TTA on {len(rows)} validation images')
        out.update(valid_ids=np.array(valid), valid_probs=tta(learn, rows.path)[:, :len(vocab)],
                   valid_targets=np.array([vocab.index(l) for l in rows.label]))
        seconds['tta_valid'] = time.perf_counter() - t0
    if test: out.update(test_tta(learn, path, len(vocab), seconds))
    return out


def test_tta(learn, path: Path, classes: int, seconds: dict) -> dict:
    "TTA probabilities of `path`'s test images (the first `classes` columns: a variety head's come after)."
    ids, files = tst_items(path)
    t0 = time.perf_counter()
    print(f'TTA on {len(ids)} test images')
    out = dict(test_ids=np.array(ids), test_probs=tta(learn, files)[:, :classes])
    seconds['tta_test'] = time.perf_counter() - t0
    return out


def with_test(f: Path, p: dict | None = None, ws: Workspace | None = None) -> dict:
    """The predictions in `f` (`p`, where already read), with the test set's made now from the run's model where its
    training left them out (a run only screened, `--no-test-preds`): `f` is rewritten whole with them, and the run's
    .json says when."""
    p = load_preds(f) if p is None else p
    if 'test_probs' in p: return p
    run, ws = str(p['run']), ws or here()
    pkl, meta_file = ws.model(run), ws.record(run)
    if not (pkl.is_file() and meta_file.is_file()):
        raise PaddyError(f"{f} holds no test predictions and its run's model {pkl} (with its .json) is not there to "
                         "make them: bring the model back, or leave this run out of the ensemble")
    print(f"{run}: making its test predictions now: its training left them until an ensemble took it")
    learn = load_model(pkl, ours=True)  # one of ours, by its .json
    seconds = {}
    p.update(test_tta(learn, Path(str(p['data'])), len(p['vocab']), seconds))
    with replaced(f) as tmp:
        with open(tmp, 'wb') as out: np.savez(out, **p)
    rec = read_record(meta_file)
    rec.test_preds = dict(made='by an ensemble', at=time.strftime('%Y-%m-%dT%H:%M:%S'),
                          seconds=round(seconds['tta_test'], 1))
    write_record(meta_file, rec, replace=True)
    return p


def error(preds: dict, probs: np.ndarray | None = None) -> float | None:
    "Validation error of `probs` (default: the run's own), or None without a validation split."
    if 'valid_targets' not in preds: return None
    probs = preds['valid_probs'] if probs is None else probs
    return float((probs.argmax(1) != preds['valid_targets']).mean())


def confusion(targets: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    "The `n`×`n` counts of each true class (rows) predicted as each class (columns): scikit-learn's."
    from sklearn.metrics import confusion_matrix
    return confusion_matrix(targets, predicted, labels=np.arange(n))


def confused(p: dict, top: int = 3) -> list[tuple[str, str, int]]:
    "The `top` most confused (true, predicted, count) pairs of prediction file `p`'s validation split, most first."
    if 'valid_probs' not in p: return []
    return most_confused(confusion(p['valid_targets'], p['valid_probs'].argmax(1), len(p['vocab'])), p['vocab'], top)


def most_confused(cm: np.ndarray, vocab, top: int = 3) -> list[tuple[str, str, int]]:
    "The `top` largest off-diagonal cells of confusion matrix `cm`, as (true, predicted, count), most first."
    vocab, cm = [str(v) for v in vocab], cm.copy()
    np.fill_diagonal(cm, 0)
    order = np.argsort(-cm, axis=None, kind='stable')[:top]
    return [(vocab[i], vocab[j], int(cm[i, j])) for i, j in zip(*np.unravel_index(order, cm.shape)) if cm[i, j]]


def save_preds(path: Path, run: str, preds: dict):
    "Write `preds` for `run` to `path` once; an existing file is never replaced."
    with open_new(path, 'xb', hint='pass --out OTHER.npz') as f: np.savez(f, run=np.array(run), **preds)


NEEDED = ('vocab',)  # a run only screened has no test predictions until an ensemble takes it (`with_test`)


def load_preds(path: Path, keys=None) -> dict:
    "A prediction file's arrays (only `keys`, where given); a damaged one is one line naming it and how to remake it."
    import zipfile
    fix = f"move it aside, then `paddy predict {Path(path).stem}` makes it again from its model"
    try:
        with np.load(path, allow_pickle=False) as z: out = {k: z[k] for k in z.files if keys is None or k in keys}
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError) as e: raise damaged(path, e, fix) from None
    except OSError as e:
        if isinstance(e, FileNotFoundError): raise
        raise damaged(path, e, fix) from None
    missing = [k for k in NEEDED if k not in out and (keys is None or k in keys)]
    if missing: raise damaged(path, KeyError(', '.join(missing)), "it is not a paddy prediction file: move it away")
    return out


def model_file(run: str, ws: Workspace, trust: bool = False) -> tuple[Path, str]:
    """The exported model of `run` and the run's name. A run is a name under `models/` whose .json says it finished;
    any other pickle loads only with `trust`, since unpickling runs whatever code the file holds."""
    p, models = Path(run), ws.models
    if run.endswith('.pkl') or '/' in run or os.sep in run:
        ours = p.parent.resolve() == models.resolve() or (p.parent.parent.resolve() == models.resolve()
                                                          and p.parent.name.endswith('.folds'))  # a CV run's fold
        if ours and p.with_suffix('.json').is_file(): return p, p.stem  # one of ours, by path
        if not trust:
            raise PaddyError(f"{run} is not a run in {models}/ with its .json, and loading a pickle runs any code in "
                             "it: pass --trust if you know where it came from")
        if not p.is_file(): raise PaddyError(f"no file {run}: check the path")
        return p, p.stem
    if not is_run_name(run): raise PaddyError(f"'{run}' is not a run name: see `ls {models}`")
    pkl, meta = ws.model(run), ws.record(run)
    if not pkl.exists() and ws.cv(run).is_dir():
        raise PaddyError(f"{run} is a CV run, whose models are its folds': predict one by its path, e.g. "
                         f"`paddy predict {ws.folds_of(run).model(run + '-f1')}`")
    if not pkl.exists():
        raise PaddyError(f"no exported model {pkl}: train one with `paddy train EXP`, or check `ls {models}`")
    if not meta.exists() and not trust:
        raise PaddyError(f"{pkl} has no {meta.name}, so it did not finish or was not made here: pass --trust to "
                         "load it anyway")
    return pkl, run


def predict(run: str, data=None, out: Path | None = None, ws: Workspace | None = None, trust: bool = False) -> Path:
    "Recompute `run`'s TTA probabilities from its exported model, e.g. on CPU or on another test folder."
    ws = ws or here()
    pkl, run = model_file(run, ws, trust)
    meta_file = pkl.with_suffix('.json')
    fix = f"restore it, or move it aside and pass --trust to predict from {pkl} alone"
    rec = read_record(meta_file, fix) if meta_file.exists() else None
    if pkl.parent.name.endswith('.folds'): ws = ws.folds_of(pkl.parent.name.removesuffix('.folds'))  # a fold's
    out = out or default_out(run, ws, ours=rec is not None)
    never_overwrite(out, hint='pass --out OTHER.npz')  # before the TTA, not after it
    if rec: path = find_data(data, recorded=rec.data)  # by default, the folder it was trained on
    learn = load_model(pkl, ours=rec is not None or trust)
    if not rec: path = find_data(data, recorded=getattr(learn, 'trained_on', {}).get('data'))  # what the model says
    p = tta_preds(learn, path, rec.valid_ids if rec else [])
    save_preds(out, run, p)
    err = error(p)
    print(f"{run}: wrote {out}" + (f"; TTA error {err:.4f}" if err is not None else ''))
    if out.parent != ws.preds: print(f"`paddy ensemble` takes it where named, e.g. paddy ensemble {out} …")
    return out


def load_model(pkl: Path, ours: bool):
    """The exported Learner in `pkl`, on the GPU where there is one; fastai's warning that unpickling runs code is kept
    unless the file is `ours` (paddy has already refused what it did not make, or the user passed --trust)."""
    import torch
    from fastai.learner import load_learner
    with warnings.catch_warnings():
        if ours: warnings.filterwarnings('ignore', message='load_learner` uses')
        return load_learner(pkl, cpu=not torch.cuda.is_available())


def default_out(run: str, ws: Workspace, ours: bool) -> Path:
    """preds/RUN.npz, where ensembles look, for a run of ours that has none; else preds/predicted/RUN-DATE-TIME.npz,
    so that a second prediction, or one of an outside model, joins an ensemble only when named."""
    if ours and not ws.probs(run).exists(): return ws.probs(run)
    return ws.predicted(run, time.strftime('%Y%m%d-%H%M%S'))
