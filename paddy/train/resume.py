"""A stopped run goes on: what rebuilds it is saved before its first epoch, and its model and optimizer, whole, after
each epoch, in `models/<run>.state/`; `paddy train --resume RUN` reads them back."""
import contextlib, re, shutil
from dataclasses import replace
from pathlib import Path

from .. import owner
from ..compat import skip_to
from ..errors import PaddyError
from ..files import damaged, is_run_name, read_json, replaced, torch_write, write_json
from ..spec import Experiment, tuples
from ..workspace import Workspace
from .settings import Settings


@contextlib.contextmanager
def owned(run: str, ws: Workspace):
    """Hold `run`'s lock while training it: a second process that would train it too (a `--resume` in another
    terminal, a sweep started again beside an orphan) is refused, naming the one that holds it. A run with no folder
    yet has nothing to hold: what reads it says why."""
    f = ws.lock(run)
    if not f.parent.is_dir():
        yield
        return
    with owner.owned(f, lambda who: f"run {run} is being trained by {who}: wait for it to end, or stop that process "
                                    "before you resume it"):
        yield


def begin(run: str, ws: Workspace, info: dict):
    """Record what rebuilds `run` (experiment, split seed, settings) before its first epoch: in a folder of its own, so
    no `models/*.json` glob takes it for a run."""
    ws.state(run).mkdir(parents=True, exist_ok=True)
    write_json(ws.state_info(run), dict(run=run, **info), replace=True)


def read(run: str, ws: Workspace) -> dict:
    "The saved state of a stopped `run`: what `begin` recorded, `epochs_done` and, past epoch 0, the `.pth` to load."
    if not is_run_name(run):
        raise PaddyError(f"--resume {run}: give a run name as in `ls {ws.models}`, e.g. convnext_small_rect-3f9a1c")
    info_file, pth = ws.state_info(run), ws.checkpoint(run)
    if ws.finished(run):  # even with its state left, by a process killed as it removed it
        raise PaddyError(f"--resume {run}: it finished; its model is {ws.model(run)}")
    if not info_file.exists():
        raise PaddyError(f"--resume {run}: no saved state {info_file}: check the name with `ls {ws.models}`")
    info = read_json(info_file, resume_hint(run, info_file))
    for k in ('experiment', 'split_seed', 'settings'):
        if k not in info: raise damaged(info_file, ValueError(f'it has no {k}'), resume_hint(run, info_file))
    if pth.exists():
        info.update({k: v for k, v in load(pth, run).items() if k in ('epochs_done', 'fit_time', 'history')})
        info['pth'] = pth
    return {'epochs_done': 0, 'fit_time': 0.0, 'pth': None, 'history': [], **info}


def resume_hint(run: str, what: Path) -> str:
    """How to go on from a state whose `what` cannot be read: only the last epoch is kept, so there is no earlier one to
    resume from; the experiment is trained again."""
    exp = run.rsplit('-', 1)[0] if re.fullmatch(r'.+-[0-9a-f]{6}', run) else 'EXP'
    return (f"{run}'s saved state cannot be resumed, and no earlier epoch is kept: move {what.parent} aside, then "
            f"train its experiment again (paddy train {exp})")


KEPT = ('model', 'opt', 'epochs_done')  # what every checkpoint holds; `cbs` (an EMA, progressive sizes) where used


def load(pth: Path, run: str) -> dict:
    """A run's checkpoint, read whole: every read of one goes through here, so a truncated or foreign file is one line
    that names it and how to go on, not torch's "Invalid argument"."""
    import pickle, zipfile
    import torch
    try: ck = torch.load(pth, map_location='cpu', weights_only=True)  # tensors and numbers only: no code runs
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise damaged(pth, e, resume_hint(run, pth)) from None
    lacks = [k for k in KEPT if not isinstance(ck, dict) or k not in ck]
    if lacks: raise damaged(pth, ValueError(f"it lacks {', '.join(lacks)}"), resume_hint(run, pth))
    return ck


def recorded(state: dict, given: Settings) -> tuple[Experiment, Settings]:
    """The experiment and settings a stopped run recorded, whole; `given` may name where its data folder moved, whether
    to log to W&B, how many processes and how much GPU memory, none of which changes what is trained."""
    exp = Experiment(**{k: tuples(v) for k, v in state['experiment'].items()})
    saved = Settings(**state['settings'])
    return exp, replace(saved, data=given.data or saved.data, wandb=given.wandb, processes=given.processes,
                        fit_memory=given.fit_memory)


def stateful(learn) -> dict:
    "`learn`'s callbacks that keep state across epochs (an EMA, progressive sizes), by name: each epoch saves them."
    return {cb.name: cb for cb in learn.cbs if hasattr(type(cb), 'saved')}


def restore(learn, pth: Path):
    """Load a checkpoint's model, optimizer and callbacks' state into `learn` (after any unfreeze, which clears the
    optimizer); one that does not fit the model (another file put in its place) is damaged too."""
    run = pth.parent.name.removesuffix('.state')
    ck = load(pth, run)
    try:
        learn.model.load_state_dict(ck['model'])
        if learn.opt is None: learn.create_opt()
        learn.opt.load_state_dict(ck['opt'])
        for name, cb in stateful(learn).items():
            if name in ck.get('cbs', {}): cb.load_saved(ck['cbs'][name], learn)
        if 'rng' in ck: set_random_states(learn, ck['rng'])  # last: nothing above may draw after it
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise damaged(pth, e, resume_hint(run, pth)) from None


def random_states(learn) -> dict:
    """Every random generator a fit draws from, as plain numbers and tensors (what `torch.load(weights_only=True)`
    takes): python's (fastai's and paddy's augmentations, MixUp's switch), numpy's (MixUp's λ), torch's (the
    augmentations on a batch, dropout) and each loader's own (its shuffle), so that a resumed run draws what an unbroken
    one would have."""
    import random
    import numpy as np
    import torch
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return dict(python=_py(random.getstate()), numpy=[kind, keys.tolist(), pos, has_gauss, gauss],
                torch=torch.get_rng_state(), cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                loaders=[_py(_loader(dl).rng.getstate()) for dl in learn.dls.loaders])


def _py(state: tuple) -> list: return [state[0], list(state[1]), state[2]]


def _loader(dl):
    "The loader that draws `dl`'s shuffle: fastai's `DistributedDL` (--processes) leaves it to the one it wraps."
    return dl.dl if type(dl).__name__ == 'DistributedDL' else dl


def set_random_states(learn, st: dict):
    "Put back what `random_states` saved."
    import random
    import numpy as np
    import torch
    random.setstate((st['python'][0], tuple(st['python'][1]), st['python'][2]))
    kind, keys, pos, has_gauss, gauss = st['numpy']
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(st['torch'])
    if st['cuda'] and torch.cuda.is_available() and len(st['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st['cuda'])
    for dl, (v, internal, g) in zip(learn.dls.loaders, st['loaders']): _loader(dl).rng.setstate((v, tuple(internal), g))


def plain(obj):
    """`obj` with numpy scalars (fastai's schedulers leave them in the optimizer's hyper-parameters) as Python numbers,
    so that `torch.load(weights_only=True)` takes it."""
    import numpy as np
    if isinstance(obj, dict): return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)): return type(obj)(plain(v) for v in obj)
    return obj.item() if isinstance(obj, np.generic) else obj


def finish(run: str, ws: Workspace):
    shutil.rmtree(ws.state(run), ignore_errors=True)


def quiet_skips():
    """A fastai callback that keeps the epochs a resume skips out of the epoch table, which would show them as empty
    rows."""
    from fastai.callback.core import Callback
    from fastai.learner import SkipToEpoch
    from fastcore.basics import noop

    class QuietSkips(Callback):
        order = 10  # before the recorder writes the epoch's row
        def before_epoch(self):
            skip = any(isinstance(cb, SkipToEpoch) and self.epoch < skip_to(cb) for cb in self.learn.cbs)
            if skip and not hasattr(self, 'logger_'): self.logger_, self.learn.logger = self.learn.logger, noop
            elif not skip: self._restore()
        def after_fit(self): self._restore()
        def _restore(self):
            if hasattr(self, 'logger_'): self.learn.logger = self.__dict__.pop('logger_')

    return QuietSkips()


class Diverged(PaddyError):
    "The loss became NaN or infinite: nothing of the run is worth keeping or going on from."
    def __init__(self, run: str, epoch: int, losses: list[float]):
        super().__init__(f"{run}: the loss became {', '.join(f'{v:g}' for v in losses)} in epoch {epoch}, so training "
                         "stopped and nothing was exported: lower lr (--set lr=…) and train again")


@contextlib.contextmanager
def uninterrupted():
    """Hold SIGINT and SIGTERM until the block ends, then act on them: a stop never leaves a checkpoint half saved,
    so the epoch whose row was printed is the epoch a resume starts after."""
    import signal, threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held, old = [], {}
    for s in (signal.SIGINT, signal.SIGTERM): old[s] = signal.signal(s, lambda signum, frame: held.append(signum))
    try: yield
    finally:
        for s, h in old.items(): signal.signal(s, h)
        if held:
            h = old[held[0]]
            if callable(h): h(held[0], None)
            elif h == signal.SIG_DFL: signal.raise_signal(held[0])


def history_row(learn, frozen: bool, seconds: float) -> dict:
    """One epoch's row of the run's history, from fastai's recorder before it prints it: the epoch of the whole run
    (fine_tune's frozen one is 0), its losses and metrics, the learning rate it ended at, and its seconds."""
    names, log = learn.recorder.metric_names[1:-1], learn.recorder.log[1:]
    row = dict(epoch=learn.epoch + getattr(learn, 'epoch0', 0), frozen=frozen)  # `loop.run_epoch`, which imports this
    row.update({n: (float(v) if isinstance(v, (int, float)) else None) for n, v in zip(names, log)})
    row.update(lr=float(learn.opt.hypers[-1]['lr']), seconds=round(seconds, 2))
    return row


def checkpoint(pth: Path, done: int, fit_before: float, history: list | None = None, pretrained: bool = False):
    """A fastai callback that saves the model and optimizer after each epoch it trained (not the ones a resume skips),
    with the run's `history`, one row an epoch (`history_row`), in the checkpoint and in `history.json` beside it, so
    a stopped run keeps its epochs."""
    import math, time
    import torch
    from fastai.callback.core import Callback
    from fastai.learner import Recorder

    class Checkpoint(Callback):
        # before the recorder prints the epoch's row (50), which holds its losses by then: a row on the screen is an
        # epoch saved, and a diverged one is never saved
        order = Recorder.order - 1
        def before_fit(self): self.t0 = getattr(self, 't0', time.perf_counter())
        def before_epoch(self): self.t_epoch = time.perf_counter()
        def after_validate(self): self.trained = True  # an epoch a resume skips never gets here
        def after_epoch(self):
            if not self.trained: return
            self.trained = False
            losses = [v for v in self.recorder.log[1:3] if isinstance(v, float)]
            if not all(math.isfinite(v) for v in losses):
                raise Diverged(pth.parent.name.removesuffix('.state'), self.epoch, losses)
            self.done += 1
            frozen = pretrained and getattr(self.learn, 'epoch0', 1) == 0  # fine_tune's first phase: the head alone
            self.history.append(history_row(self.learn, frozen, time.perf_counter() - self.t_epoch))
            state = dict(model=self.learn.model.state_dict(), opt=plain(self.learn.opt.state_dict()),
                         cbs={k: cb.saved() for k, cb in stateful(self.learn).items()}, epochs_done=self.done,
                         rng=random_states(self.learn),
                         fit_time=fit_before + time.perf_counter() - self.t0, history=self.history)
            with uninterrupted():
                with replaced(pth) as tmp, torch_write(pth): torch.save(state, tmp)
                write_json(pth.with_name('history.json'), dict(epochs=self.history), replace=True)

    cb = Checkpoint()
    cb.done, cb.trained, cb.history = done, False, list(history or [])
    return cb
