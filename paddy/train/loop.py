"""The fit itself: fastai's fine_tune schedule, gradient accumulation across processes, and a stop that leaves no half
run."""
import contextlib, sys
from pathlib import Path

from ..errors import PaddyError
from ..files import Damaged
from ..spec import Experiment
from ..stops import stopping
from ..workspace import Workspace
from . import distributed, resume


def accum_setup(exp: Experiment, world: int = 1):
    """Each process's micro-batch and callbacks, so that `world` processes together step on `exp.bs` images:
    `GradientAccumulation` counts one process's samples, so it gets that process's share of the effective batch."""
    from fastai.callback.training import GradientAccumulation
    if exp.bs % (exp.accum * world):
        raise PaddyError(f"{exp.name}: bs={exp.bs} does not split into accum={exp.accum} × {world} processes: "
                         "choose a bs they divide")
    return exp.bs // exp.accum // world, ([GradientAccumulation(exp.bs // world)] if exp.accum > 1 else [])




def unfinished(run: str, ws: Workspace):
    """Remove the model and predictions of `run`, whose .json, written last, is not there: a stop or failure removes
    them at once, and what a process killed outright (SIGKILL: no clean-up runs) left is removed when it resumes."""
    if ws.finished(run): return  # finished: never touched
    for f in (ws.model(run), ws.probs(run)): f.unlink(missing_ok=True)


@contextlib.contextmanager
def whole_or_nothing(run: str, ws: Workspace, resume_as: str | None = None):
    """A run stopped (Ctrl-C, SIGTERM, a sweep's stop) or failed before its .json is unfinished: remove the model and
    predictions it wrote, keep its saved state, and say how to go on (`paddy train --resume` `resume_as`, the CV run a
    fold belongs to, else `run`)."""
    try: yield
    except BaseException as e:
        if isinstance(e, Damaged): raise  # its state is left as it is, for the user to move aside or look into
        if not ws.finished(run):
            unfinished(run, ws)
            if ws.state_info(run).exists():
                try: done = resume.read(run, ws)['epochs_done']
                except PaddyError: done = 0
                # a failure before any epoch finished, or a diverged run, leaves nothing worth going on from; a stop
                # keeps even epoch 0's state, so that a sweep resumes its run under the same name and split
                stopped = isinstance(e, KeyboardInterrupt) or stopping()
                if isinstance(e, resume.Diverged) or not done and not stopped:
                    resume.finish(run, ws)
                else: print(f"paddy: {run} stopped after {done} finished epochs; "
                            f"`paddy train --resume {resume_as or run}` goes on from there", file=sys.stderr)
        raise


def fit(learn, epochs: int, lr: float, pretrained: bool, start: int = 0, state: Path | None = None, *,
        lr_mult: float):
    """fastai's `fine_tune` for pretrained weights (one frozen epoch, then `epochs` whole, the body `lr_mult` times
    slower than the head); random init has nothing to protect, so it trains whole from the first epoch. A resumed run
    skips the `start` epochs it finished, after loading their `state`."""
    say = print if distributed.is_main() else (lambda *a: None)
    if pretrained and start < 1:
        say('frozen: 1 epoch of the new head alone')  # fastai prints a table for each phase, with the same header
        learn.freeze()
        learn.epoch0 = 0
        learn.fit_one_cycle(1, slice(lr), pct_start=0.99)
    if pretrained: learn.unfreeze()  # this clears the optimizer, so a saved one is loaded after it
    if state is not None: resume.restore(learn, state)
    learn.epoch0 = int(pretrained)
    if pretrained:
        say(f'unfrozen: {epochs} epochs of the whole model')
        learn.fit_one_cycle(epochs, slice(lr / 2 / lr_mult, lr / 2), pct_start=0.3, div=5.0,
                            start_epoch=max(0, start - 1))
    else: learn.fit_one_cycle(epochs, lr, start_epoch=start)
    del learn.epoch0


def run_epoch(learn) -> int:
    """The epoch of the whole run that `learn` is in, counting fine_tune's frozen epoch as 0: what a technique that
    changes over the run (mixing's last epochs, progressive sizes) schedules by."""
    return learn.epoch + getattr(learn, 'epoch0', 0)
