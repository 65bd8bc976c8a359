"""A CV run: K runs of one experiment, run k trained on every fold of the plan but k and predicting fold k with TTA, so
that every training image gets one out-of-fold (OOF) prediction; and a final fit on every image (`--full`).

Its folds live in `models/<cv>.folds/` and `preds/<cv>.folds/`, out of sight of `paddy results` and `paddy ensemble`,
which take the CV run whole: `preds/<cv>.npz` holds the OOF probabilities as its validation and the folds' mean test
probabilities, and `models/<cv>.json`, written last, marks it finished."""
import dataclasses, shutil, sys

import numpy as np

from .. import folds as F
from ..data import find_data, read_train, split_seed
from ..errors import PaddyError
from ..files import new_run, read_json, write_json
from ..predict import error, load_preds, save_preds
from ..provenance import stamp
from ..record import RunRecord, read_record, write_record
from ..results import metas, repeats_of
from ..spec import Experiment, load
from ..workspace import Workspace, here
from . import trainer
from .learner import check_experiment
from .resume import owned, recorded
from .trainer import train
from .settings import Settings


def is_cv(name: str, ws: Workspace) -> bool: return ws.cv_plan(name).is_file()


def begin(exp: Experiment, settings: Settings, k: int, ws: Workspace) -> dict:
    """Check what every fold's run checks (the spec, weights, data and images) and K, save the fold plan and name the
    CV run: bad input fails here, before anything is written."""
    check_experiment(exp)
    seed, path = split_seed(exp.seed), find_data(settings.data)
    plan = F.make(read_train(path), k, seed)  # a bad K fails first, as it is the option just given
    if ws.fold_plan(F.digest(plan)).exists(): F.load(F.digest(plan), ws)  # and a damaged plan of this one
    trainer.checked(exp, settings)  # then what each fold checks: weights, data and images
    plan = F.save(plan, ws)
    cv = new_run(exp.name, ws.models, ws.preds)
    info = dict(run=cv, experiment=dataclasses.asdict(exp), settings=dataclasses.asdict(settings), folds=k,
                plan=plan, split_seed=seed, **stamp())
    write_json(ws.cv_plan(cv), info)
    return info


def cross_validate(exp: Experiment | None, settings: Settings, k: int = 5, ws: Workspace | None = None,
                   resume_cv: str | None = None) -> dict:
    """Train the K folds of `exp` (or finish stopped CV run `resume_cv`: the folds it has not finished, one that was
    stopped from its last epoch), then combine them into the CV run's predictions and its .json."""
    ws = ws or here()
    if resume_cv:
        if ws.finished(resume_cv):
            raise PaddyError(f"--resume {resume_cv}: it finished; its OOF predictions are in {ws.probs(resume_cv)}")
        info = read_json(ws.cv_plan(resume_cv), f"move {ws.cv(resume_cv)} aside and start the CV run again: its plan "
                                                 "cannot be read")
        exp, settings = recorded(info, settings)
    else: info = begin(exp, settings, k, ws)
    cv, k = info['run'], info['folds']
    fws = ws.folds_of(cv)
    done = [j for j in range(1, k + 1) if fws.finished(f'{cv}-f{j}')]
    print(f"{cv}: {k}-fold cross-validation of {exp.name} on fold plan {ws.fold_plan(info['plan'])}"
          + (f"; folds {', '.join(map(str, done))} already finished" if done else ''))
    with owned(cv, ws):  # the whole CV run, so a second process cannot start its next fold too
        try:
            for j in range(1, k + 1):
                name = f'{cv}-f{j}'
                if j in done: continue
                print(f'{cv}: fold {j} of {k}', flush=True)
                if fws.state(name).is_dir():
                    train(settings=settings, ws=fws, resume_run=name, resume_as=cv)
                else: train(exp, settings, fws, split=dict(kind='fold', plan=info['plan'], fold=j, folds=k, cv=cv),
                            name=name, resume_as=cv)
        except BaseException:
            # a failure with no fold finished or stopped to go on from leaves no CV run behind; a stop keeps its plan
            if not any(fws.models.glob(f'{cv}-f*.json')) and not any(fws.models.glob('*.state')):
                shutil.rmtree(fws.models, ignore_errors=True); shutil.rmtree(fws.preds, ignore_errors=True)
            raise
    return finish(info, ws)


def finish(info: dict, ws: Workspace) -> dict:
    """Join the K folds: the OOF probabilities, in id order, and the mean of the K models' test probabilities, into
    preds/<cv>.npz; the OOF error, the folds' spread and the summed fit time into models/<cv>.json."""
    cv, k = info['run'], info['folds']
    fws = ws.folds_of(cv)
    runs = [read_record(fws.record(f'{cv}-f{j}')) for j in range(1, k + 1)]
    ps = [load_preds(fws.probs(f'{cv}-f{j}')) for j in range(1, k + 1)]
    ids = np.concatenate([p['valid_ids'] for p in ps])
    order = np.argsort(ids, kind='stable')
    if len(set(ids)) != len(ids): raise PaddyError(f"{cv}: an image is in two folds' validation: the plan is damaged")
    p = dict(vocab=ps[0]['vocab'], data=ps[0]['data'], valid_ids=ids[order],
             valid_probs=np.concatenate([p['valid_probs'] for p in ps])[order],
             valid_targets=np.concatenate([p['valid_targets'] for p in ps])[order],
             test_ids=ps[0]['test_ids'], test_probs=np.mean([p['test_probs'] for p in ps], 0),
             folds=np.array(info['plan']), members=np.array([r.run for r in runs]))
    # made from the folds, and finished only with the .json: one left by a stop between the two is made again
    if not ws.finished(cv): ws.probs(cv).unlink(missing_ok=True)
    save_preds(ws.probs(cv), cv, p)
    n = np.array([r.n_valid for r in runs])
    errs = np.array([r.tta_error_rate for r in runs])
    first = runs[0]
    rec = RunRecord(run=cv, experiment=info['experiment'], vocab=first.vocab, data=first.data,
                    split_seed=info['split_seed'], split=dict(kind='cv', plan=info['plan'], folds=k),
                    n_train=int(n.sum()), n_valid=int(n.sum()), n_pseudo=first.n_pseudo,
                    # every image is held out once, so the folds' errors weighted by their sizes are the OOF errors
                    error_rate=float(np.dot(n, [r.error_rate for r in runs]) / n.sum()), tta_error_rate=error(p),
                    fold_errors=errs.tolist(), fold_mean=float(errs.mean()), fold_std=float(errs.std(ddof=1)),
                    fit_time=float(sum(r.fit_time for r in runs)), runs=[r.run for r in runs],
                    peak_gpu_mem_gb=max(r.peak_gpu_mem_gb or 0.0 for r in runs), device=first.device,
                    weights=first.weights, sweep=info['settings'].get('sweep'),
                    files=dict(preds=str(ws.probs(cv)), folds=str(fws.models),
                               plan=str(ws.fold_plan(info['plan']))), **stamp())
    write_record(ws.record(cv), rec)
    print(f"{cv}: OOF error {rec.error_rate:.4f}, TTA OOF error {rec.tta_error_rate:.4f} over {rec.n_valid} images; "
          f"folds' TTA error {rec.fold_mean:.4f} ± {rec.fold_std:.4f}, fit {rec.fit_time:.0f}s → {ws.probs(cv)}")
    return rec.to_dict()


def matching(exp: Experiment, data: str, ws: Workspace) -> RunRecord | None:
    "The newest finished CV run of `exp`'s recipe on `data`: the one that stands for a final fit's validation."
    want = repeats_of(dataclasses.asdict(exp))
    cvs = [m for _, m in metas(ws, warn=False) if m.kind == 'cv' and m.data == data
           and repeats_of(m.experiment) == want]
    return max(cvs, key=lambda m: m.created or '', default=None)


def full_fit(exp: Experiment, settings: Settings, ws: Workspace | None = None) -> dict:
    """`paddy train EXP --full`: every training image, no validation, the CV run's recipe and epochs. The newest CV run
    of the same recipe and data stands for its validation; without one it trains all the same, and says so."""
    data, ws = str(find_data(settings.data).resolve()), ws or here()
    cv = matching(exp, data, ws)
    if cv: print(f"{exp.name}: a final fit on every image; CV run {cv.run} (OOF TTA error "
                 f"{cv.tta_error_rate:.4f}) stands for its validation")
    else: print(f"{exp.name}: a final fit on every image; no finished CV run of this recipe on {data} (train one with "
                f"`paddy train {exp.name} --folds 5`), so ensembles cannot choose by its validation", file=sys.stderr)
    split = dict(kind='full', stand_in=cv.run if cv else None, plan=cv.split['plan'] if cv else None)
    return train(exp, settings, ws, split=split)


def start(exp: str | None, sets=(), settings: Settings = Settings(), resume_run: str | None = None,
          folds: int | None = None, full: bool = False) -> int:
    """`paddy train`: with `folds`, a CV run of `exp`; with `full`, its final fit; `resume_run` finishes a stopped CV
    run or plain run; else one plain run (`trainer.start`). Exit code."""
    ws = here()
    cv = resume_run is not None and is_cv(resume_run, ws)
    if resume_run and (folds is not None or full):
        raise PaddyError(f"--resume {resume_run} finishes the run as it was started: drop --folds and --full")
    if folds is not None and full:
        raise PaddyError("--folds K makes a CV run and --full the final fit after it: train them one after the other")
    if settings.processes != 1 and (folds is not None or full or cv):
        raise PaddyError("--processes trains one run over several GPUs, and a CV run or final fit is not one: drop "
                         "--processes, or run CV runs side by side with `paddy sweep EXP… --folds K`")
    if not (folds is not None or full or cv): return trainer.start(exp, sets, settings, resume_run)
    # a CV run's test predictions are the mean of its folds', made as each fold ends
    settings = dataclasses.replace(settings, test_preds=True)
    if resume_run and sets: raise PaddyError(f"--resume {resume_run} finishes the run as it was started: drop --set")
    if exp is None and not cv: raise PaddyError("--folds and --full need an experiment: paddy train EXP --folds 5")
    spec = load(exp, sets) if exp else None
    if full: full_fit(spec, settings, ws)
    else: cross_validate(spec, settings, folds or 0, ws, resume_cv=resume_run if cv else None)
    return 0
