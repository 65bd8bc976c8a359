"""Every finished run's metadata (models/*.json) as one table, with each architecture's family."""
import re, sys
from pathlib import Path

import pandas as pd

from .errors import PaddyError
from .files import Damaged, open_new
from .record import RunRecord, read_record
from .spec import Experiment, final_size, recipe
from .workspace import Workspace, here

COLUMNS = ['run', 'dataset', 'experiment', 'recipe', 'arch', 'family', 'resize', 'item_size', 'size', 'accum', 'epochs',
           'split', 'error_rate', 'tta_error_rate', 'tta_helped', 'fit', 'fold_mean', 'fold_std', 'fit_time',
           'gpu_mem_gb', 'device', 'sweep', 'created']


def family(arch: str) -> str:
    "convnext_small.fb_in22k → convnext, swinv2_base_window12_192 → swinv2, resnet26d → resnetd; else its own."
    name = arch.split('.')[0].lower()
    name = re.sub(r'^(tf|test)_', '', name)  # TF ports and timm's tiny test models belong to the family they copy
    # the rule of the seed's "which image models are best" analysis: the leading letters, keeping a v2
    m = re.match(r'^([a-z]+?(?:v2)?)(?:\d|_|$)', name)
    if not m: return name or arch
    fam = m.group(1)
    if fam == 'resnet' and re.search(r'resnet\d+d', name): fam = 'resnetd'
    if re.fullmatch(r'regnet[xyzv]', fam): fam = 'regnet'
    return fam


def repeats_of(exp: 'Experiment | dict') -> str:
    "What runs that repeat one another share: the recipe of a run's recorded experiment but its seeds (`spec.recipe`)."
    return recipe(exp, without=('seed', 'train_seed'), n=6)


def _size(s) -> str:
    return 'x'.join(map(str, s)) if isinstance(s, (list, tuple)) else str(s)


def split(rec: RunRecord) -> str:
    "How a run was validated: on a held-out share ('single'), out of fold ('cv5', one row for 5 runs), or not ('full')."
    return f"cv{rec.split['folds']}" if rec.kind == 'cv' else 'full' if rec.kind == 'full' else 'single'


def row(rec: RunRecord) -> dict:
    """One run's metadata as a table row: `size` is the last the model saw (progressive resizing's last); `tta_helped`
    compares at 6 places: fastai's error is float32, TTA's float64. A CV run's errors are its out-of-fold ones, with the
    spread of its folds' TTA errors and the sum of their fit times."""
    exp = rec.experiment
    err, tta = rec.error_rate, rec.tta_error_rate
    return dict(run=rec.run, dataset=Path(str(rec.data or '')).name, experiment=rec.name,
                recipe=repeats_of(exp), arch=exp.arch or None, family=family(str(exp.arch or '')), resize=exp.resize,
                item_size=_size(exp.item_size), size=_size(final_size(exp)), accum=exp.accum,
                epochs=exp.epochs, split=split(rec), error_rate=err, fold_mean=rec.fold_mean,
                fold_std=rec.fold_std,
                tta_error_rate=tta, tta_helped=None if err is None or tta is None else round(tta, 6) < round(err, 6),
                fit=fit_flag(rec.history), fit_time=rec.fit_time, gpu_mem_gb=rec.peak_gpu_mem_gb, device=rec.device,
                sweep=rec.sweep, created=rec.created)


def fit_flag(history: list | None) -> str | None:
    """From a run's epoch history: 'underfits' when its last epoch's training loss is above its validation loss (more
    epochs would pay; MixUp and CutMix raise the training loss by design), 'overfits' when its validation loss rose over
    its last two epochs, else ''; None without a history."""
    rows = [h for h in history or [] if h.get('valid_loss') is not None and h.get('train_loss') is not None]
    if not rows: return None
    if rows[-1]['train_loss'] > rows[-1]['valid_loss']: return 'underfits'
    v = [h['valid_loss'] for h in rows[-3:]]
    return 'overfits' if len(v) == 3 and v[0] < v[1] < v[2] else ''


def metas(ws: Workspace | None = None, warn: bool = True) -> list[tuple[Path, RunRecord]]:
    "Every finished run's record file and record (a run is finished when its .json exists); others are skipped."
    out = []
    for f in (ws or here()).records():
        try: out.append((f, read_record(f)))
        except Damaged as e:
            if warn: print(f"warning: skipping {f}: not a run's metadata ({str(e).split('(')[1].split(':')[0]})",
                           file=sys.stderr)
        except PaddyError as e:  # a record of a newer schema: the others are still read
            if warn: print(f"warning: skipping {f}: {e}", file=sys.stderr)
    return out


def results(ws: Workspace | None = None) -> pd.DataFrame:
    "One row per finished run, oldest first."
    rows, ws = [], ws or here()
    for f, meta in metas(ws):
        try: rows.append(row(meta))
        except (AttributeError, TypeError) as e:
            print(f"warning: skipping {f}: not a run's metadata ({type(e).__name__})", file=sys.stderr)
    if not rows:
        raise PaddyError(f"no finished runs in {ws.models}/: train some with `paddy train EXP` or `paddy sweep EXP…`")
    return pd.DataFrame(rows, columns=COLUMNS).sort_values('created', kind='stable').reset_index(drop=True)


def table(ws: Workspace | None = None, csv: Path | None = None) -> pd.DataFrame:
    "`results` to show, and written to `csv` too when given (a new file: nothing is overwritten)."
    df = results(ws)
    if csv is not None:
        with open_new(csv, 'x', hint='choose another --csv') as f: df.to_csv(f, index=False)
        print(f'wrote {csv} ({len(df)} runs)', file=sys.stderr)
    return df.drop(columns=['created', 'sweep'])
