"""fastai's learning-rate finder, as Road to the Top uses it: `lr_find(suggest_funcs=(valley, slide))` on the
experiment's own data and transforms, before its first epoch; the model is left as it was."""
import math, tempfile
from pathlib import Path

from ..errors import PaddyError

FIND = 'find'  # what an experiment's `lr` says when the finder is to choose it


def find(learn, name: str) -> dict:
    """Run the finder on `learn` (frozen where it is pretrained, as `fine_tune` starts): both suggestions, the curve
    (learning rates and smoothed losses, one point a batch) and `used`, the valley's, which a run trains at."""
    from fastai.callback.schedule import slide, valley
    home = learn.path
    with tempfile.TemporaryDirectory() as tmp:
        # the finder saves the model before and loads it after, under learn.path: never among the user's models
        learn.path = Path(tmp)
        try:
            with learn.no_logging(), learn.no_bar(): got = learn.lr_find(suggest_funcs=(valley, slide), show_plot=False)
        except IndexError:  # a curve too short for valley's gradient: it diverged in its first batches
            got = None
        finally: learn.path = home
    lrs = [float(v) for v in learn.recorder.lrs]
    losses = [float(v) for v in learn.recorder.losses]
    ok = got is not None and len(losses) >= 5 and all(math.isfinite(v) and v > 0 for v in (got.valley, got.slide))
    if not ok:
        raise PaddyError(f"{name}: the learning-rate finder diverged after {len(losses)} batches, before it could "
                         "suggest a rate: set lr to a number (Road to the Top's 0.01), or check the data with "
                         "`paddy check`")
    return dict(valley=float(got.valley), slide=float(got.slide), used=float(got.valley), lrs=lrs, losses=losses)


def plot(found: dict, title: str, out: Path) -> Path:
    "The finder's curve with its two suggestions marked, as `lr_find` draws it, into the PNG `out`."
    import matplotlib
    matplotlib.use('Agg')  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt
    from ..files import written_once
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(found['lrs'], found['losses'])
    for key, mark in (('valley', 'o'), ('slide', 's')):
        lr = found[key]
        i = min(range(len(found['lrs'])), key=lambda j: abs(math.log(found['lrs'][j]) - math.log(lr)))
        ax.plot(lr, found['losses'][i], mark, markersize=8, label=f'{key}: {lr:.2e}')
    ax.set(xscale='log', xlabel='learning rate (log scale)', ylabel='loss (smoothed)', title=title)
    ax.legend()
    fig.tight_layout()
    with written_once(out, hint='wait a second, or pass --name') as tmp: fig.savefig(tmp, dpi=90, format='png')
    plt.close(fig)
    return out
