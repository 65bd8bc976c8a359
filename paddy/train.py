"""Fine-tune one experiment, export it under a unique run name with its metadata, then score it with TTA."""
import contextlib, dataclasses, os, sys, time
from dataclasses import replace
from pathlib import Path

from . import distributed, preflight, resume, wandb_io
from .data import dataloaders, find_data, num_workers, read_train, split_seed, valid_ids
from .data.sizes import against
from .data.verify import ensure
from .errors import PaddyError
from .models import learner, precision, speedups
from .predict import error, save_preds, tta_preds
from .provenance import new_run, stamp, write_json, written_once
from .spec import Experiment, validate
from .weights import resolve


def accum_setup(exp: Experiment, world: int = 1):
    """Each process's micro-batch and callbacks, so that `world` processes together step on `exp.bs` images:
    `GradientAccumulation` counts one process's samples, so it gets that process's share of the effective batch."""
    from fastai.callback.training import GradientAccumulation
    if exp.bs % (exp.accum * world):
        raise PaddyError(f"{exp.name}: bs={exp.bs} does not split into accum={exp.accum} × {world} processes: choose a bs they divide")
    return exp.bs // exp.accum // world, ([GradientAccumulation(exp.bs // world)] if exp.accum > 1 else [])


@contextlib.contextmanager
def whole_or_nothing(run: str, models: Path, preds: Path):
    """A run stopped (Ctrl-C, SIGTERM, a sweep's stop) or failed before its .json is unfinished: remove the model and
    predictions it wrote, keep its saved state, and say how to go on."""
    try: yield
    except BaseException:
        if not (models / f'{run}.json').exists():
            for f in (models / f'{run}.pkl', preds / f'{run}.npz'): f.unlink(missing_ok=True)
            if resume.paths(run, models)[0].exists():
                done = resume.read(run, models)['epochs_done']
                print(f"paddy: {run} stopped after {done} finished epochs; `paddy train --resume {run}` goes on from there", file=sys.stderr)
        raise


def fit(learn, epochs: int, lr: float, pretrained: bool, start: int = 0, state: Path | None = None):
    """fastai's `fine_tune` for pretrained weights (one frozen epoch, then `epochs` whole); random init has nothing to
    protect, so it trains whole from the first epoch. A resumed run skips the `start` epochs it finished, after
    loading their `state`."""
    if pretrained and start < 1:
        learn.freeze()
        learn.fit_one_cycle(1, slice(lr), pct_start=0.99)
    if pretrained: learn.unfreeze()  # this clears the optimizer, so a saved one is loaded after it
    if state is not None: resume.restore(learn, state)
    if pretrained: learn.fit_one_cycle(epochs, slice(lr / 2 / 100, lr / 2), pct_start=0.3, div=5.0, start_epoch=max(0, start - 1))
    else: learn.fit_one_cycle(epochs, lr, start_epoch=start)


def train(exp: Experiment | None = None, data=None, models: Path = Path('models'), preds: Path = Path('preds'),
          sweep: str | None = None, wandb: bool = False, cache: bool = True, prec: str = 'auto', channels_last: bool = True,
          go_on: str | None = None, fit_memory: float | None = None) -> dict:
    """Fine-tune `exp` on the competition folder `data`; write models/<run>.{pkl,json} and preds/<run>.npz. `cache` keeps the
    item-transformed images for later epochs and runs; `prec` and `channels_last` apply on CUDA. `go_on` names a stopped
    run to finish instead, with the experiment, data folder, split and settings it recorded. `fit_memory` (GB) raises
    `accum` until a few measured steps fit, on CUDA."""
    import torch
    distributed.start()
    state = resume.read(go_on, models) if go_on else None
    if state:
        exp = Experiment(**{k: tuple(v) if isinstance(v, list) else v for k, v in state['experiment'].items()})
        data, sweep, cache, prec, channels_last = data or state['data'], state['sweep'], state['cache'], state['precision'], state['channels_last']
    validate(exp)
    if wandb: wandb_io.check()
    path = find_data(data)
    weights = resolve(exp.arch, exp.pretrained)  # fails fast offline, before any data is read
    seed = state['split_seed'] if state else split_seed(exp.seed)
    prec = precision(prec)
    ensure(path, num_workers())  # a truncated image stops the run now, not an hour into it
    df = read_train(path)
    if exp.variety and ('variety' not in df or (df.variety == '').any()):
        n = len(df) if 'variety' not in df else int((df.variety == '').sum())
        raise PaddyError(f"{exp.name}: variety = True needs a variety on every row of {path / 'train.csv'}, and {n} of {len(df)} have none: "
                         f"set variety = False (--set variety=False)")
    warn = against(df, exp.item_size, num_workers())
    if warn: print(f'warning: {warn}', file=sys.stderr)
    valid = valid_ids(df.image_id, seed, exp.valid_pct)
    cuda = torch.cuda.is_available()
    fitted = None
    if fit_memory is not None and not cuda:
        print(f'--fit-memory {fit_memory:g}: no CUDA device here, so no GPU memory to fit; training with accum {exp.accum}', file=sys.stderr)
    elif fit_memory is not None:
        accum, peak, tried = preflight.choose(exp, fit_memory, lambda e: preflight.peak_gb(e, df, valid, weights, prec, channels_last, cache))
        exp, fitted = replace(exp, accum=accum), dict(budget_gb=fit_memory, accum=accum, peak_gb=round(peak, 2), tried=tried)
    world = distributed.world()
    bs, cbs = accum_setup(exp, world)
    dls = dataloaders(df, exp, valid, bs, cache=cache, data=path.resolve(), pin_memory=cuda)  # pinned: the copy to the GPU runs async
    if len(dls.train) == 0: raise PaddyError(f"{len(dls.train_ds)} training images make no full batch of {bs}: lower bs")
    learn = speedups(learner(dls, exp, weights, cbs), prec, channels_last)
    run = distributed.shared(go_on or new_run(exp.name, models, preds))
    start, main = state['epochs_done'] if state else 0, distributed.main()
    if not state and main: resume.begin(run, models, dict(experiment=dataclasses.asdict(exp), data=str(path.resolve()), split_seed=seed,
                                                  sweep=sweep, cache=cache, precision=prec, channels_last=channels_last))
    with whole_or_nothing(run, models, preds):
        if main: print(f'{run}: {exp.arch} ({weights.source}) on {len(dls.train_ds)} train / {len(dls.valid_ds)} valid images from {path}, '
              f'bs {bs}×{exp.accum}{f"×{world}" if world > 1 else ""}, {f"cuda, {prec}" + (", channels_last" if channels_last else "") if cuda else "cpu"}'
              + (f', {world} processes' if world > 1 else ''))
        if cuda: torch.cuda.reset_peak_memory_stats()
        if wandb: learn.add_cb(wandb_io.start(run, exp, str(path.resolve()), sweep))
        if start: print(f'{run}: resuming after {start} of {exp.epochs + weights.pretrained} epochs')
        t0 = time.perf_counter()
        saving = [resume.checkpoint(resume.paths(run, models)[1], start, state['fit_time'] if state else 0.0)] if main else []
        with learn.added_cbs(saving + [resume.quiet_skips()]), distributed.training(learn):
            fit(learn, exp.epochs, exp.lr, weights.pretrained, start, state['pth'] if start else None)
        fit_now = time.perf_counter() - t0
        if not main: return dict(run=run, rank=int(os.environ.get('RANK', 0)))  # the main process writes the run
        fit_time = fit_now + (state['fit_time'] if state else 0.0)
        scores = learn.validate()
        err = float(scores[1])
        models.mkdir(parents=True, exist_ok=True)
        with written_once(models / f'{run}.pkl') as tmp: learn.export(tmp.resolve())
        p = tta_preds(learn, path, valid, df)
        save_preds(preds / f'{run}.npz', run, p)
        meta = dict(run=run, experiment=dataclasses.asdict(exp), vocab=p['vocab'].tolist(), data=str(path.resolve()),
                    split_seed=seed, valid_ids=valid, n_train=len(dls.train_ds), n_valid=len(dls.valid_ds),
                    error_rate=err, tta_error_rate=error(p), fit_time=fit_time,
                    variety_error_rate=float(scores[2]) if exp.variety else None, fit_memory=fitted,
                    img_per_s=(exp.epochs + weights.pretrained - start) * len(dls.train_ds) / fit_now,  # fine_tune adds a frozen epoch
                    resumed=bool(state), resumed_from_epoch=start if state else None, world_size=world,
                    peak_gpu_mem_gb=torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0,
                    mixed_precision=prec != 'fp32', precision=prec, channels_last=cuda and channels_last,
                    item_cache=str(dls.item_cache.folder) if dls.item_cache is not None else None, device='cuda' if cuda else 'cpu', weights=weights.source,
                    files=dict(model=str(models / f'{run}.pkl'), preds=str(preds / f'{run}.npz')), sweep=sweep, **stamp())
        if wandb: wandb_io.finish(meta)
        write_json(models / f'{run}.json', meta)  # last: its presence is what marks a run finished
        resume.finish(run, models)
        print(f'{run}: error {err:.4f}, TTA error {meta["tta_error_rate"]:.4f}, fit {fit_time:.0f}s → {models / run}.pkl')
        return meta
