"""The time plan: each run's wall time estimated from a measured one (its screening run, or any finished run), scaled
by each image's cost (its pixels, to a power a little over 1), images and epochs; the runs that fit in the hours
left, in rank order over the devices, and those dropped."""
import math
from dataclasses import dataclass, replace

from ..spec import Experiment, final_size, hw

TTA_PASSES = 5     # fastai's tta: 4 augmented passes and the plain one
INFER_SPEEDUP = 3  # a forward pass alone is about a third of a training step
# a step's time grows a little faster than its pixels: EfficientNet-Lite0's whole-model epochs on 2 CPU cores took
# 30.5 s at 96 px and 140 s at 192 px, 4.6 times for 4 times the pixels (docs/benchmarks.md)
PIXEL_POWER = 1.1
# with no run measured yet, in `cost` a second: that Lite0 at 59 img/s at 96 px (13 at 192); a GPU, some 100 times that
PRIOR_PX_PER_S = {'cpu': 59 * (96 * 96) ** PIXEL_POWER, 'cuda': 750 * (224 * 224) ** PIXEL_POWER}
# a run's wall time beyond its fit and TTA (process start, imports, model build, validation, export), before any run
# measured it: 12 s in a screening run's `seconds` on 2 CPU cores
PRIOR_STARTUP_S = {'cpu': 15.0, 'cuda': 20.0}
# screening ranks candidates that often lie within noise of each other (docs/benchmarks.md): it gets at most this share
# of a budget, and with less than two runs' worth, none: the playbook's first candidate goes on unscreened
SCREEN_SHARE = 0.2
# two screening runs of the cpu playbook on DeepWeeds were right on different validation images for 21–27% of them: a
# paired difference in error over n images then has a standard error of about sqrt(0.25 / n) (`resolution`)
SCREEN_DISAGREE = 0.25
MARGIN = 0.05          # of a budget, kept for the ensemble, its check and what the estimates miss
MAX_EPOCHS = 3         # final runs take up to this many times the playbook's final_epochs when the budget has room
# where screening ended underfitting, the runs the budget holds at MAX_EPOCHS take up to this many times instead, rather
# than leave the rest of the budget unused: Lite0's final runs on DeepWeeds gained from 5 to 8 to 12 epochs, their
# validation loss still falling, and held at 24 gained again (docs/benchmarks.md; all at fastai's lr_mult of 100)
UNDERFIT_EPOCHS = 6
# once the runs have `MAX_EPOCHS` times the playbook's epochs, the rest of a budget buys pixels before more epochs: a
# larger final size, at the most epochs that then fit, down to this share of those the plan gave. Lite0 held on
# DeepWeeds, every image, 2T: 24 epochs at 192 px reached 0.837 test accuracy, its validation loss flat over its last
# seven; 18 and 22 epochs at 224 px reached 0.853 and 0.837 (docs/benchmarks.md): no worse, and the budget is spent.
# With the body at a third of the head's rate (lr_mult=3), 22 epochs at 224 px reached 0.927
GROW_KEEP = 2 / 3
# sizes a multiple of the model's total stride apart: between two of them a step costs about as much as at the larger
# (Lite0's training step held to stride 8 on 2 CPU cores: 31 img/s at 192 px, 22.8 at 208, 21.7 at 224)
GROW_PX = 32


def duration(seconds: float) -> str:
    "Seconds in the unit that reads best: 40 s, 12.5 min, 3.2 h."
    seconds = max(seconds, 0.0)
    if seconds < 90: return f'{seconds:.2g} s' if seconds < 10 else f'{seconds:.0f} s'
    return f'{seconds / 60:.1f} min' if seconds < 5400 else f'{seconds / 3600:.1f} h'


def cost(exp: Experiment) -> float:
    "What one image of `exp` costs a step: its final size's pixels to the `PIXEL_POWER`."
    h, w = hw(final_size(exp))
    return float(h * w) ** PIXEL_POWER


def trained_per_epoch(exp: Experiment, n: int, folds: int = 0, full: bool = False) -> float:
    "Images one epoch of one run trains on: all but the validation share, all but one fold, or all (`full`)."
    return n if full else n * (folds - 1) / folds if folds else n * (1 - exp.valid_pct)


@dataclass
class Estimate:
    "One planned run: what it is, how long it should take, and from which measurement."
    label: str
    seconds: float
    source: str
    runs: int = 1  # a CV run is `folds` runs, its seconds their sum

    def __str__(self): return f'{self.label}: {duration(self.seconds)} ({self.source})'


def rate(rec, exp: Experiment | None = None) -> float:
    """The `cost` a second that a finished run's record (a `RunRecord`) says it trained at: from its whole-model
    epochs where its history has them, since fine_tune's frozen epoch trains the head alone, far cheaper, and flattered
    a short screening run's rate (the cpu playbook's final run took a third longer than planned); else its `img_per_s`
    over every epoch."""
    from statistics import median
    e = exp or rec.experiment
    whole = [h['seconds'] for h in rec.history if not h.get('frozen') and h.get('seconds')]
    ips = rec.n_train / median(whole) if whole and rec.n_train else rec.img_per_s
    return ips * cost(e)


def scaled(px_per_s: float, measured: Experiment, planned: Experiment, slowdown: float) -> float:
    """A rate measured on `measured` (its `cost` a second) as the rate of `planned`, whose image takes `slowdown` times
    as long a step (a probe's measure, `paddy.train.probe`), instead of what their pixels say."""
    return px_per_s / cost(measured) * cost(planned) / slowdown


def estimate(exp: Experiment, label: str, n_train: int, n_test: int, px_per_s: float, source: str, folds: int = 0,
             overhead: float = 0.0, pretrained: bool = True, full: bool = False) -> Estimate:
    """Wall seconds of `exp` on `n_train` labelled and `n_test` test images at `px_per_s`: its epochs (and fine_tune's
    frozen one) over the images it trains on (all of them, and none validated, with `full`), TTA over what it
    validates and the test set, and a fixed `overhead` per run (start-up, item cache) measured in screening."""
    ips = px_per_s / cost(exp)
    runs = max(folds, 1)
    per = trained_per_epoch(exp, n_train, folds, full) * (exp.epochs + pretrained) / ips
    valid = 0 if full else n_train / folds if folds else n_train * exp.valid_pct
    return Estimate(label, runs * (per + tta(exp, valid, n_test, px_per_s) + overhead), source, runs)


def tta(exp: Experiment, n_valid: float, n_test: int, px_per_s: float) -> float:
    "Seconds of TTA over `n_valid` and `n_test` images at the training rate `px_per_s`."
    return TTA_PASSES * (n_valid + n_test) * cost(exp) / (px_per_s * INFER_SPEEDUP)


def fit(estimates: list[Estimate], seconds_left: float, devices: int = 1) -> tuple[list[Estimate], list[Estimate]]:
    """The runs that end within `seconds_left` when started in this order, each on the device that frees first, and
    the ones dropped: a run that would end past the budget is dropped, and a later, shorter one may still fit."""
    free, keep, drop = [0.0] * max(devices, 1), [], []
    for e in estimates:
        k = min(range(len(free)), key=free.__getitem__)
        if free[k] + e.seconds <= seconds_left: free[k] += e.seconds; keep.append(e)
        else: drop.append(e)
    return keep, drop


def screen_share(est: list[Estimate], budget: float | None, devices: int = 1) -> tuple[list[Estimate], str]:
    """The screening runs that fit in `SCREEN_SHARE` of `budget` seconds, in the playbook's order (its prior), and why:
    all of them without a budget, none when fewer than two fit."""
    if budget is None: return est, f'all {len(est)} candidates: no budget to share'
    share = SCREEN_SHARE * budget
    keep, drop = fit(est, share, devices)
    if len(keep) < 2:
        return [], (f"no screening: {SCREEN_SHARE:.0%} of the budget ({duration(share)}) holds {len(keep)} of the "
                    f"{len(est)} screening runs ({duration(est[0].seconds)} each, {est[0].source}), too few to "
                    "compare; the playbook's first candidate goes on")
    return keep, (f"{len(keep)} of {len(est)} candidates screened within {SCREEN_SHARE:.0%} of the budget "
                  f"({duration(share)})" + (f"; left out: {', '.join(e.label for e in drop)}" if drop else ''))


def resolution(n_valid: float) -> float:
    """The smallest difference in error between two screening runs that a validation split of `n_valid` images tells
    from noise at 95%: 1.96 paired standard errors, with runs that are right on different images for `SCREEN_DISAGREE`
    of them (450 images: 4.6 points; 2,081, the Paddy competition's: 2.1)."""
    return 1.96 * math.sqrt(SCREEN_DISAGREE / max(n_valid, 1))


def epochs_for(make, base: int, seconds_left: float, devices: int = 1,
               epochs_first: bool = False) -> tuple[int, list[Estimate], list[Estimate]]:
    """The most epochs, up to `MAX_EPOCHS` × `base`, at which the runs `make(epochs)` estimates, in rank order, end
    within `seconds_left`; more epochs before anything larger, since short runs here still underfit
    (docs/benchmarks.md). Where all of them get fewer than `base` epochs, the last ones are dropped so that fewer runs
    get more; when even one does not fit at one epoch, one epoch and the runs that fit. With `epochs_first` (the
    screening runs ended still underfitting), epochs come before runs: a run a device, another run only where each can
    still have `MAX_EPOCHS` × `base`, and then the most epochs that fit, up to `UNDERFIT_EPOCHS` × `base`."""
    n = len(make(base))
    if epochs_first:
        cap, k = MAX_EPOCHS * base, min(n, max(devices, 1))  # a run on a device that would idle costs no time
        while k < n and not fit(make(cap)[:k + 1], seconds_left, devices)[1]: k += 1
        for e in range(UNDERFIT_EPOCHS * base, 0, -1):
            runs = make(e)
            keep, drop = fit(runs[:k], seconds_left, devices)
            if not drop: return e, keep, runs[k:]
    for k in range(n, 0, -1):
        for e in range(MAX_EPOCHS * base, 0, -1):
            runs = make(e)
            keep, drop = fit(runs[:k], seconds_left, devices)
            if drop: continue
            if e >= base or k == 1: return e, keep, runs[k:]
            break  # too few epochs for all k: try one run fewer
    return 1, *fit(make(1), seconds_left, devices)


def growths(exp: Experiment) -> list[float]:
    """The factors, smallest first, that take `exp`'s final size up `GROW_PX` at a time on its long side, as far as
    the pixels a training crop holds (its item's side times `train_scale`: beyond, a view is only upsampled); none for
    progressive resizing, whose sizes are a schedule of their own."""
    from ..data.tfms import train_scale
    if exp.aug_sizes: return []
    long, most = max(hw(exp.aug_size)), max(hw(exp.item_size)) * train_scale(exp.min_scale)
    return [(long + d) / long for d in range(GROW_PX, int(most - long) + 1, GROW_PX)]


def grown(exp: Experiment, factor: float) -> Experiment:
    "`exp` with its final size `factor` times as large on each side, aspect kept, in multiples of 8, within its item."
    if factor == 1 or exp.aug_sizes: return exp
    (h, w), (H, W) = hw(exp.aug_size), hw(exp.item_size)
    r, c = min(H, round(h * factor / 8) * 8), min(W, round(w * factor / 8) * 8)
    return replace(exp, aug_size=r if r == c else (r, c))


def table(keep: list[Estimate], drop: list[Estimate], seconds_left: float) -> str:
    "The plan in words: what runs, what is dropped, against the time left."
    budget = ('with no time limit' if seconds_left == float('inf') else
              f'in the {duration(seconds_left)} left')
    lines = [f"plan: {len(keep)} run{'s' * (len(keep) != 1)} {budget}" + (f', {len(drop)} dropped' if drop else '')]
    lines += [f'  run   {e}' for e in keep] + [f'  drop  {e}: would end past the budget' for e in drop]
    return '\n'.join(lines)
