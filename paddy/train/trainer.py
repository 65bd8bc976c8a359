"""Fine-tune one experiment, export it under a unique run name with its metadata, then score it with TTA:
`train` is `prepare` → `fit` → `record`."""
import dataclasses, os, re, sys, time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import stops, wandb_io
from ..data import dataloaders, find_data, num_workers, read_train, split_seed, valid_ids
from ..data.sizes import against
from ..data.verify import ensure
from ..errors import PaddyError
from ..files import new_run, torch_write, written_once
from ..folds import check_data, held_out, is_pseudo
from ..folds import load as load_plan
from ..predict import confused, error, load_preds, save_preds, tta_preds
from ..provenance import stamp
from ..record import RunRecord, write_record
from ..spec import Experiment, load
from ..workspace import Workspace, here
from . import distributed, lr_find, preflight, resume, techniques
from .compiled import Compiling, compile_model, plain
from .ema import EMA
from .learner import check_experiment, learner, precision, speedups
from .loop import accum_setup, fit, unfinished, whole_or_nothing
from .progressive import Progressive
from .settings import Settings
from .weights import Weights, resolve


@dataclass
class Run:
    "A run ready to fit: what it trains, on what, and from which epoch."
    name: str
    exp: Experiment
    settings: Settings
    path: Path
    df: object                   # read_train's table
    valid: list[str]
    seed: int                    # the validation split's
    weights: Weights
    learn: object
    bs: int
    world: int                   # processes training it together
    fitted: dict | None = None   # what --fit-memory measured and chose
    state: dict | None = None    # a stopped run's saved state, when resuming
    compiling: Compiling | None = None  # the compile seconds of a `compile = True` run
    compile_in_fit: float = 0.0
    tricks: list = dataclasses.field(default_factory=list)  # the techniques' callbacks, for the fit alone
    split: dict = dataclasses.field(default_factory=lambda: dict(SPLIT))  # what it holds out: see `holdout`
    seconds: dict = dataclasses.field(default_factory=dict)  # wall time outside the fit, by stage: see `record`
    history: list = dataclasses.field(default_factory=list)  # one row an epoch: `resume.history_row`
    train_seed: int = 0          # what `training_seed` gave: head init, batch order and augmentation
    lr_found: dict | None = None  # `lr = 'find'`: what the finder suggested and the rate used (`lr_find.find`)

    @property
    def lr(self) -> float: return self.lr_found['used'] if self.lr_found else self.exp.lr

    @property
    def start(self) -> int: return self.state['epochs_done'] if self.state else 0
    @property
    def fit_before(self) -> float: return self.state['fit_time'] if self.state else 0.0


def checked(exp: Experiment, settings: Settings) -> tuple[Settings, Path, object, Weights]:
    """Everything that can fail before the first epoch, checked now: the spec, the weights, the data and its images;
    `settings` with the data folder and precision resolved, the folder, its train.csv and the weights."""
    check_experiment(exp)
    if settings.wandb: wandb_io.check_installed()
    path = find_data(settings.data)
    weights = resolve(exp.arch, exp.pretrained)  # fails fast offline, before any data is read
    settings = replace(settings, data=str(path.resolve()), precision=precision(settings.precision))
    ensure(path, num_workers())  # a truncated image stops the run now, not an hour into it
    df = read_train(path)
    if exp.variety and ('variety' not in df or (df.variety == '').any()):
        n = len(df) if 'variety' not in df else int((df.variety == '').sum())
        raise PaddyError(f"{exp.name}: variety = True needs a variety on every row of {path / 'train.csv'}, and {n} of "
                         f"{len(df)} have none: set variety = False (--set variety=False)")
    warn = against(df, exp.item_size, num_workers())
    if warn: print(f'warning: {warn}', file=sys.stderr)
    return settings, path, df, weights


def fit_memory(exp: Experiment, settings: Settings, measure) -> tuple[Experiment, dict | None]:
    "`exp` with the smallest accum whose measured steps fit `settings.fit_memory` GB, on CUDA; what was tried."
    import torch
    if settings.fit_memory is None: return exp, None
    if not torch.cuda.is_available():
        print(f'--fit-memory {settings.fit_memory:g}: no CUDA device here, so no GPU memory to fit; '
              f'training with accum {exp.accum}', file=sys.stderr)
        return exp, None
    accum, peak, tried = preflight.choose(exp, settings.fit_memory, measure)
    return replace(exp,
                   accum=accum), dict(budget_gb=settings.fit_memory, accum=accum, peak_gb=round(peak, 2), tried=tried)


SPLIT = dict(kind='seed')  # the shared validation split of `seed`; 'fold' and 'full' come from paddy/train/cv.py


def holdout(split: dict, df, seed: int, exp: Experiment, path: Path, ws: Workspace) -> list[str]:
    """The ids a run validates on: the seed's share of the labelled images (`kind` 'seed'), fold `fold` of plan
    `plan` ('fold'), or none ('full', a final fit on every image). Pseudo-labelled rows always train."""
    if split['kind'] == 'full': return []
    if split['kind'] == 'fold':
        plan = load_plan(split['plan'], ws)
        check_data(plan, split['plan'], df, path)
        return held_out(plan, split['fold'])
    return valid_ids(df.image_id[~is_pseudo(df)], seed, exp.valid_pct)


def prepare(exp: Experiment, settings: Settings, ws: Workspace, state: dict | None = None,
            split: dict | None = None, name: str | None = None, begin: bool = True) -> Run:
    """Check everything, split as `split` says (see `holdout`), build the DataLoaders and Learner, find the learning
    rate where the experiment asks, and name the run `name`, else a new name (a resume keeps its name and split); with
    `begin` off, nothing is named or written (`paddy lr-find`)."""
    import torch
    settings, path, df, weights = checked(exp, settings)
    seed = state['split_seed'] if state else split_seed(exp.seed)
    split = (state.get('split') if state else split) or SPLIT
    valid = holdout(split, df, seed, exp, path, ws)
    cuda = torch.cuda.is_available()
    exp, fitted = fit_memory(exp, settings, lambda e: preflight.peak_gb(
        e, df, valid, weights, settings.precision, settings.channels_last, settings.cache))
    world = distributed.world()
    bs, cbs = accum_setup(exp, world)
    train_seed = state.get('train_seed', seed) if state else training_seed(exp, seed, settings.sweep)
    from fastai.torch_core import set_seed
    # python, numpy and torch: the loaders' order, the head, the augmentation; cuDNN's own choices stay free on a GPU
    # (faster) unless the experiment asks for `deterministic`
    set_seed(train_seed, reproducible=exp.deterministic)
    if len(df) - len(valid) < bs:  # before the item cache is built for nothing
        raise PaddyError(f"{len(df) - len(valid)} training images make no full batch of {bs}: lower bs")
    # pinned: async copies
    dls = dataloaders(df, exp, valid, bs, cache=settings.cache, data=settings.data, pin_memory=cuda,
                      resident=None if settings.gpu_cache else False)
    if len(dls.train) == 0:
        raise PaddyError(f"{len(dls.train_ds)} training images make no full batch of {bs}: lower bs")
    learn = speedups(learner(dls, exp, weights, cbs), settings.precision, settings.channels_last)
    if not valid:  # a final fit: nothing to validate, so the epoch table has no validation columns
        learn.recorder.valid_metrics, learn.metrics = False, []
        stops.quiet('no validation')
    if exp.compile: compile_model(learn, exp)
    found = None
    if exp.lr == lr_find.FIND:
        found = state.get('lr_find') if state else lr_find.find(learn, exp.name)
        if not found:
            raise PaddyError(f"--resume {state['run']}: its state holds no rate from the learning-rate finder: train "
                             f"{exp.name} again")
        print(f"{exp.name}: learning-rate finder: valley {found['valley']:.2e}, slide {found['slide']:.2e}; training "
              f"at the valley's")
    if begin: name = distributed.shared(state['run'] if state else name or new_run(exp.name, ws.models, ws.preds))
    if begin and not state and distributed.is_main():
        resume.begin(name, ws, dict(experiment=dataclasses.asdict(exp), split_seed=seed, split=split,
                                        settings=dataclasses.asdict(settings), train_seed=train_seed, lr_find=found))
    return Run(name or '', exp, settings, path, df, valid, seed, weights, learn, bs, world, fitted, state,
               Compiling() if exp.compile else None, tricks=techniques.callbacks(exp, weights.pretrained), split=split,
               train_seed=train_seed, lr_found=found)


def training_seed(exp: Experiment, split_seed: int, sweep: str | None) -> int:
    """`exp.train_seed` where set (`--set train_seed=N` reruns a run), else the split's seed plus the repeat's index:
    a sweep's job `<exp>-<k>` adds k - 1, so repeats differ and each can be rerun."""
    if exp.train_seed is not None: return exp.train_seed
    k = re.search(r'-(\d+)$', str(sweep or '').split('/', 1)[-1]) if sweep else None
    return split_seed + (int(k[1]) - 1 if k else 0)


def announce(r: Run):
    import torch
    if not distributed.is_main(): return
    s, world, dls = r.settings, r.world, r.learn.dls
    device = (f"cuda, {s.precision}"
              + (", channels_last" if s.channels_last else "") if torch.cuda.is_available() else "cpu")
    bs = f'{r.bs}×{r.exp.accum}' + (f'×{world}' if world > 1 else '')
    held = {'fold': f" (fold {r.split.get('fold')} of {r.split.get('folds')})", 'full': ' (a final fit on every image)'}
    print(f'{r.name}: {r.exp.arch} ({r.weights.source}) on {len(dls.train_ds)} train / {len(dls.valid_ds)} valid '
          f"images{held.get(r.split['kind'], '')} from {r.path}, bs {bs}, {device}"
          + (f', {world} processes' if world > 1 else '') + (f', {pseudo_count(r)} of them pseudo-labelled'
                                                             if pseudo_count(r) else ''))
    if dls.item_cache_why: print(f'{r.name}: training batches from host memory: {dls.item_cache_why}')
    if r.exp.deterministic and torch.cuda.is_available():
        print(f"{r.name}: deterministic = True: cuDNN's deterministic kernels, without its autotuner: slower steps")
    if r.exp.compile: print(f'{r.name}: compiling the model ({r.exp.compile_backend}, {r.exp.compile_mode}) at the '
                            'first batch of each phase; its seconds are counted apart from the fit')
    if r.start: print(f'{r.name}: resuming after {r.start} of {r.exp.epochs + r.weights.pretrained} epochs')


def fit_run(r: Run, ws: Workspace) -> float:
    "Fit `r`, saving its state after every epoch on the main process; the seconds it took, less any compiling."
    import torch
    if torch.cuda.is_available(): torch.cuda.reset_peak_memory_stats()
    if r.settings.wandb: r.learn.add_cb(wandb_io.start(r.name, r.exp, r.settings.data, r.settings.sweep))
    t0 = time.perf_counter()
    saving = [resume.checkpoint(ws.checkpoint(r.name), r.start, r.fit_before,
                                r.state['history'] if r.state else [], r.weights.pretrained)
              ] if distributed.is_main() else []
    cbs = saving + [resume.quiet_skips()] + r.tricks
    with r.learn.added_cbs(cbs), distributed.training(r.learn), r.compiling or nullcontext():
        fit(r.learn, r.exp.epochs, r.lr, r.weights.pretrained, r.start, r.state['pth'] if r.start else None,
            lr_mult=r.exp.lr_mult)
    r.compile_in_fit = r.compiling.seconds if r.compiling else 0.0
    if saving: r.history = saving[0].history
    return time.perf_counter() - t0 - r.compile_in_fit


def process_age() -> float | None:
    "Seconds since this process started, from Linux's /proc: a `paddy train`'s imports and start-up, before `train`."
    try:
        ticks = int(Path('/proc/self/stat').read_text().rsplit(')', 1)[1].split()[19])  # field 22, starttime
        return float(Path('/proc/uptime').read_text().split()[0]) - ticks / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError): return None


def pseudo_count(r: Run) -> int: return int(is_pseudo(r.df).sum())


def metadata(r: Run, scores, p: dict, fit_now: float, ws: Workspace, raw=None) -> RunRecord:
    """The run's .json: its recipe, split, scores (`raw`: the model's own, where an EMA's are the run's), speed and
    where it ran, with the provenance every artefact carries."""
    import torch
    cuda, dls, s = torch.cuda.is_available(), r.learn.dls, r.settings
    avg, sizes = techniques.find(r.tricks, EMA), techniques.find(r.tricks, Progressive)
    return RunRecord(run=r.name, experiment=r.exp, vocab=p['vocab'].tolist(), data=s.data,
                split_seed=r.seed, train_seed=r.train_seed, split=r.split, valid_ids=r.valid, n_train=len(dls.train_ds),
                n_valid=len(dls.valid_ds), n_pseudo=pseudo_count(r),
                error_rate=float(scores[1]) if scores else None, tta_error_rate=error(p) if r.valid else None,
                fit_time=fit_now + r.fit_before,
                variety_error_rate=float(scores[2]) if r.exp.variety and scores else None, fit_memory=r.fitted,
                ema=dict(decay=r.exp.ema, steps=avg.steps, decay_reached=avg.decay_now(),
                         raw_error_rate=float(raw[1]) if raw else None) if avg else None,
                batch_shapes=sizes.record() if sizes else None, confused=confused(p) if r.valid else [],
                # the seconds outside the fit: process start to `train`, its checks, data and model, the validation,
                # the export and each TTA; and whether the test set was predicted (a run only screened leaves it to
                # the ensemble that takes it, which records when)
                seconds={k: v if v is None else round(v, 2) for k, v in r.seconds.items()}, history=r.history,
                lr_find=r.lr_found,  # `lr = 'find'`: both suggestions, the curve, and the rate trained at
                test_preds=r.settings.test_preds,
                # fine_tune adds a frozen epoch
                img_per_s=(r.exp.epochs + r.weights.pretrained - r.start) * len(dls.train_ds) / fit_now,
                resumed=bool(r.state), resumed_from_epoch=r.start if r.state else None, world_size=r.world,
                peak_gpu_mem_gb=torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0,
                mixed_precision=s.precision != 'fp32', precision=s.precision, channels_last=cuda and s.channels_last,
                item_cache=str(dls.item_cache.folder) if dls.item_cache is not None else None,
                # where the training batches came from: the cache held on the GPU ('gpu'), or in the process on a
                # CPU ('cpu'), or memory-mapped on the host ('host'), and why not on the GPU
                item_cache_where=dls.item_cache_where, item_cache_why=dls.item_cache_why,
                compile=r.compiling.record(r.exp, r.compile_in_fit) if r.compiling else None,
                device='cuda' if cuda else 'cpu', weights=r.weights.source,
                files=dict(model=str(ws.model(r.name)), preds=str(ws.probs(r.name))), sweep=s.sweep,
                **stamp())


def record(r: Run, fit_now: float, ws: Workspace) -> dict:
    """Validate, export, predict with TTA (the test set too unless `settings.test_preds` is off) and write the run's
    .json, last: its presence is what marks a run finished."""
    with r.compiling or nullcontext():
        t0 = time.perf_counter()
        avg = techniques.find(r.tricks, EMA)
        raw = r.learn.validate() if avg and r.valid else None
        if avg: avg.copy_to(r.learn.model)  # what is validated, exported and predicted from here on
        scores = r.learn.validate() if r.valid else None
        t1 = time.perf_counter()
        ws.models.mkdir(parents=True, exist_ok=True)
        pkl = ws.model(r.name)
        # a model carried away without its .json still says which run it is and where its data was
        r.learn.trained_on = dict(run=r.name, data=str(r.path.resolve()))
        with written_once(pkl) as tmp, torch_write(pkl), plain(r.learn.model): r.learn.export(tmp.resolve())
        r.seconds.update(validate=t1 - t0, export=time.perf_counter() - t1)
        p = tta_preds(r.learn, r.path, r.valid, r.df, test=r.settings.test_preds, seconds=r.seconds)
    if r.split.get('plan'): p['folds'] = np.array(r.split['plan'])  # only runs of one fold plan ensemble together
    if r.split['kind'] != 'seed': p['split'] = np.array(r.split['kind'])
    if r.split.get('stand_in'): p.update(stand_in(r.split['stand_in'], ws))
    save_preds(ws.probs(r.name), r.name, p)
    rec = metadata(r, scores, p, fit_now, ws, raw)
    if r.settings.wandb: wandb_io.finish(rec)
    write_record(ws.record(r.name), rec)
    resume.finish(r.name, ws)
    if rec.ema and r.valid: print(f"{r.name}: the EMA of the weights is exported; the model's own error was "
                                  f"{rec.ema['raw_error_rate']:.4f}")
    if r.valid: print(f"{r.name}: error {rec.error_rate:.4f}, TTA error {rec.tta_error_rate:.4f}, "
                      f"fit {rec.fit_time:.0f}s → {pkl}")
    else: print(f"{r.name}: trained on every image, fit {rec.fit_time:.0f}s → {pkl}; "
                + (f"CV run {r.split['stand_in']} stands for its validation" if r.split.get('stand_in') else
                   "no CV run of this recipe stands for its validation, so an ensemble cannot choose by it"))
    if rec.confused: print(f"{r.name}: most confused (true → predicted, validation images): "
                           + ', '.join(f"{a} → {b} ×{n}" for a, b, n in rec.confused))
    return rec.to_dict()  # what callers (a CV run, the demo, scripts) index as JSON


def stand_in(cv: str, ws: Workspace) -> dict:
    """A final fit's validation: the out-of-fold probabilities of CV run `cv` of its recipe, which an ensemble chooses
    by in its place, marked as `valid_from`."""
    oof = load_preds(ws.probs(cv))
    return dict(valid_from=np.array(cv), **{k: oof[k] for k in ('valid_ids', 'valid_probs', 'valid_targets')})


def train(exp: Experiment | None = None, settings: Settings = Settings(), ws: Workspace | None = None,
          resume_run: str | None = None, split: dict | None = None, name: str | None = None,
          resume_as: str | None = None) -> dict:
    """Fine-tune `exp` with `settings`, holding out what `split` says (see `holdout`), as run `name` (default: a new
    one); write models/<run>.{pkl,json} and preds/<run>.npz. `resume_run` names a stopped run to finish instead, with
    the experiment, split and settings it recorded; `resume_as`, what a stop tells the user to resume."""
    ws = ws or here()
    distributed.start()
    main = distributed.is_main()
    # a stopped run is taken before its state is read, a new one once it is named: one process trains a run at a time
    with resume.owned(resume_run, ws) if resume_run and main else nullcontext():
        state = resume.read(resume_run, ws) if resume_run else None
        if state:
            exp, settings = resume.recorded(state, settings)
            unfinished(resume_run, ws)  # what a process killed in `record` left: it is made again
        t0, age = time.perf_counter(), process_age()
        r = prepare(exp, settings, ws, state, split, name)
        r.seconds.update(start=age, prepare=time.perf_counter() - t0)
        with resume.owned(r.name, ws) if main and not state else nullcontext(), \
                whole_or_nothing(r.name, ws, resume_as):
            announce(r)
            fit_now = fit_run(r, ws)
            if not main: return dict(run=r.name, rank=int(os.environ.get('RANK', 0)))  # the main one writes
            return record(r, fit_now, ws)


def start(exp: str | None, sets=(), settings: Settings = Settings(), resume_run: str | None = None) -> int:
    """`paddy train`: one run of experiment `exp` (or the stopped `resume_run`) here, or over `settings.processes`; exit
    code. A CV run or a final fit goes through `paddy.train.cv.start`, which calls this for a plain run."""
    if (exp is None) == (resume_run is None):
        raise PaddyError("give an experiment (paddy train EXP) or a stopped run (paddy train --resume RUN), one of "
                         "the two")
    if resume_run and sets: raise PaddyError(f"--resume {resume_run} finishes the run as it was started: drop --set")
    if settings.processes < 1: raise PaddyError(f"--processes {settings.processes}: give 1 or more")
    spec = load(exp, sets) if exp else None  # a bad spec fails here, once, not in every process
    if spec and spec.lr == lr_find.FIND and settings.processes > 1:
        raise PaddyError(f"{spec.name}: lr = 'find' with --processes {settings.processes}: each process would find its "
                         f"own rate; find it once with `paddy lr-find {exp}`, then --set lr=THAT")
    if settings.processes > 1:
        head = ('train', exp) if exp else ('train', '--resume', resume_run)
        return distributed.launch(replace(settings, processes=1).argv(*head, sets=sets), settings.processes)
    train(spec, settings, resume_run=resume_run)
    return 0
