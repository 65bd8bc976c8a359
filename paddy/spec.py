"""Experiment specs: `experiments/<name>.py` files of plain assignments, one experiment each."""
import ast, difflib, hashlib, json, math, os, runpy, sys, typing
import types as types_
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .errors import PaddyError

Size = typing.Union[int, tuple[int, int]]  # a square side, or (rows, cols) as fastai's Resize reads it
RESIZE_METHODS = ('squish', 'crop', 'pad')
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')  # torch.compile's


@dataclass(frozen=True)
class Experiment:
    "One fine-tuning recipe; `name` is its file stem, used in every file name that comes from it."
    name: str
    arch: str                          # a timm name (tag optional), or a torchvision/fastai arch
    resize: str = 'squish'             # item transform to `item_size`: squish | crop | pad
    item_size: Size = 480
    aug_size: Size = 224               # what the model sees, after `aug_transforms`
    min_scale: float = 0.75
    flip: bool = True
    epochs: int = 12
    lr: typing.Union[float, str] = 0.01  # or 'find': fastai's finder chooses it before the first epoch (its valley)
    lr_mult: float = 100.0             # fine_tune's: after its frozen epoch the body trains lr_mult times slower
    accum: int = 1                     # micro-batches per step; the effective batch stays `bs`
    bs: int = 64
    seed: typing.Optional[int] = 42    # validation split; None draws a fresh one (ensemble diversity)
    train_seed: typing.Optional[int] = None  # head init, batch order, augmentation; None: the split's + repeat index
    deterministic: bool = False        # a GPU run repeats exactly too: cuDNN's deterministic kernels, slower
    valid_pct: float = 0.2
    pretrained: typing.Union[bool, str] = True  # hub weights, False, a weights file, or a packaged-weights name
    variety: bool = False              # Road to the Top part 4: a second head learns train.csv's variety too
    compile: bool = False              # torch.compile the model: minutes of compiling, then faster steps on a GPU
    compile_mode: str = 'default'      # default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs
    compile_backend: str = 'inductor'  # inductor makes the kernels; aot_eager only traces (quick, for tests)
    # techniques, each off by default (docs/experiments.md recommends a recipe from docs/benchmarks.md)
    mixup: float = 0.0                 # MixUp's Beta alpha; 0 is off
    cutmix: float = 0.0                # CutMix's Beta alpha; 0 is off
    mix_switch: float = 0.5            # with both on, the chance a batch takes CutMix (timm's --mixup-switch-prob)
    mix_off_epochs: int = 0            # the last N epochs train unmixed (timm's --mixup-off-epoch)
    label_smoothing: float = 0.0       # ε of both heads' cross-entropy; 0 is off
    ema: float = 0.0                   # decay of an EMA of the weights, with a warm-up; 0 is off
    aug_sizes: tuple[Size, ...] = ()   # progressive resizing: sizes spread over the epochs, the last one final
    freeze_stride: int = 0             # the pretrained stem and stages up to this stride stay held: faster steps


FIELDS = {f.name: f for f in fields(Experiment) if f.name != 'name'}


def assignments(exp: Experiment) -> str:
    "Every field of `exp` as one assignment a line: the body of a flat experiment file that needs nothing beside it."
    return ''.join(f'{k} = {getattr(exp, k)!r}\n' for k in FIELDS)


def recipe(exp: 'Experiment | dict', without: typing.Sequence[str] = (), n: int = 12) -> str:
    """A short id of what `exp` (an Experiment, or one as a run's record holds it) trains: a hash of its fields but its
    name and `without`, equal whichever files, bases and --set made it. A field at its default counts as absent, so a
    field added to paddy later leaves the recipes recorded before it as they were. A sweep's identity takes every
    field; the runs that repeat one another (results, a CV run's stand-in) leave out the seeds."""
    d = asdict(exp) if isinstance(exp, Experiment) else exp
    def default(k, v): return k in FIELDS and tuples(v) == FIELDS[k].default
    kept = {k: v for k, v in d.items() if k != 'name' and k not in without and not default(k, v)}
    return hashlib.sha1(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:n]


def experiments_dir() -> Path:
    "`experiments/` under the working directory, else the one beside this package."
    here = Path('experiments')
    return here if here.is_dir() else Path(__file__).resolve().parent.parent / 'experiments'


def available(folder: Path | None = None) -> list[str]:
    "Names of the experiments in `folder`."
    return sorted(p.stem for p in (folder or experiments_dir()).glob('*.py') if not p.stem.startswith('_'))


def find_file(name: str, folders: list[Path], what: str, none: str) -> Path:
    """The file of `name`: a path when it ends in `.py` or holds a separator, else `<name>.py` in the first of
    `folders` that has it. One rule for experiments and playbooks; `none` is the hint when no name comes close."""
    if name.endswith('.py') or '/' in name or os.sep in name:
        p = Path(name)
        if not p.is_file(): raise PaddyError(f"no {what} file {p}: check the path")
        return p
    for folder in folders:
        if (folder / f'{name}.py').is_file(): return folder / f'{name}.py'
    names = sorted({p.stem for f in folders for p in f.glob('*.py') if not p.stem.startswith('_')})
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    raise PaddyError(f"no {what} '{name}' in {folders[0]}/: " + (f"did you mean {', '.join(close)}?" if close else
                                                                 none))


def read_assignments(p: Path, types: dict) -> dict:
    """The plain assignments of file `p` (run with its folder importable, so a variant can `from base import *`; the
    bases are read afresh each time), each checked against its field in `types`."""
    before = set(sys.modules)
    sys.path.insert(0, str(p.parent.resolve()))
    try: ns = runpy.run_path(str(p))
    except Exception as e: raise PaddyError(f"{p}: {type(e).__name__}: {e}") from None
    finally:
        sys.path.pop(0)
        for m in set(sys.modules) - before: del sys.modules[m]
    return {k: _check(k, v, str(p), types) for k, v in ns.items()
            if not k.startswith('_') and not isinstance(v, types_.ModuleType)}


def spec_path(name: str, folder: Path | None = None) -> Path:
    "The file for `name`: an experiment name, or a path to a `.py` file."
    return find_file(name, [folder or experiments_dir()], 'experiment', "run `paddy list` to see them")


def _fits(tp, v) -> bool:
    "Whether `v` is a value of the annotated type `tp` (bools are not ints here)."
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types_.UnionType): return any(_fits(a, v) for a in args)
    if tp is type(None): return v is None
    if origin is tuple and args[-1:] == (Ellipsis,): return isinstance(v, tuple) and all(_fits(args[0], o) for o in v)
    if origin is tuple:
        return isinstance(v, tuple) and len(v) == len(args) and all(_fits(a, o) for a, o in zip(args, v))
    if tp is float: return isinstance(v, (int, float)) and not isinstance(v, bool)
    if tp is int: return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, tp)


def _check(key: str, v, where: str, types: dict | None = None):
    "Return `v` as field `key`'s type in `types` (an experiment's fields), or raise naming the field and where it is."
    types = FIELDS if types is None else types
    if key not in types:
        close = difflib.get_close_matches(key, types, n=1)
        raise PaddyError(f"{where}: unknown field '{key}'"
                         + (f" (did you mean '{close[0]}'?)" if close else f"; fields are {', '.join(types)}"))
    tp = types[key].type
    v = tuples(v)
    if not _fits(tp, v):
        if key == 'aug_sizes':
            raise PaddyError(f"{where}: aug_sizes={v!r} must be a list of sizes, each one side in pixels or (rows, "
                             "cols), written aug_sizes = [(128, 96), (224, 168)] in a file or --set "
                             "'aug_sizes=[(128,96),(224,168)]'")
        if tp is Size: raise PaddyError(f"{where}: {key}={v!r} must be one side in pixels or (rows, cols), written "
                                        f"{key} = (320, 240) in a file or --set '{key}=(320,240)'")
        raise PaddyError(f"{where}: {key}={v!r} must be of type {_tname(tp)}")
    # a whole number given to a float field (`--set lr=1`) is that float, in a union with str too
    numeric = isinstance(v, int) and not isinstance(v, bool) and (tp is float or float in typing.get_args(tp))
    return float(v) if numeric else v


def tuples(v):
    "`v` with its lists, nested too, as tuples: how JSON and a spec file's `[...]` give back a size."
    return tuple(tuples(o) for o in v) if isinstance(v, (list, tuple)) else v


def from_record(d: dict) -> Experiment:
    """An experiment as a run's record or state holds it (JSON: lists for tuples): a field this paddy no longer has is
    left out, one it lacks takes its default, and a record that names none (a W&B run of another tool) an empty name."""
    known = {f.name for f in fields(Experiment)}
    return Experiment(**{'name': '', 'arch': '', **{k: tuples(v) for k, v in d.items() if k in known}})


def _tname(tp) -> str:
    return str(tp).replace('typing.', '').replace("<class '", '').replace("'>", '')


def parse_override(text: str):
    "`key=value` from the command line, with `value` read as a Python literal where it is one."
    key, sep, raw = text.partition('=')
    if not sep: raise PaddyError(f"--set {text}: write it as --set field=value")
    key = key.strip()
    try: v = ast.literal_eval(raw)
    except (ValueError, SyntaxError): v = raw
    # a bare word for a str field (`arch=resnet18`) is meant as text, as are numbers given to one
    if key in FIELDS and not _fits(FIELDS[key].type, v) and _fits(FIELDS[key].type, raw): v = raw
    return key, _check(key, v, f'--set {text}')


def load(name: str, overrides: typing.Sequence[str] = (), folder: Path | None = None) -> Experiment:
    "Read experiment `name` (or a path), then apply `key=value` `overrides`."
    p = spec_path(name, folder)
    vals = read_assignments(p, FIELDS)
    if 'arch' not in vals: raise PaddyError(f"{p}: set `arch`, e.g. arch = 'convnext_small'")
    exp = Experiment(name=p.stem, **vals)
    return replace(exp, **dict(parse_override(o) for o in overrides))


def load_sweep(names: typing.Sequence[str], sets: typing.Sequence[str] = (), repeat: int = 1) -> list[Experiment]:
    """The experiments of a sweep of `repeat` runs each (local, on Ray, on Kaggle): a repeat below 1, a bad experiment
    or one named twice stops it before any run starts."""
    if repeat < 1: raise PaddyError(f"--repeat {repeat}: give 1 or more")
    specs = [load(n, sets) for n in names]
    if len({s.name for s in specs}) < len(specs):
        raise PaddyError("the same experiment is named twice: use --repeat for repeats")
    return specs


def hw(size: Size) -> tuple[int, int]:
    "`size` as (rows, cols)."
    return (size, size) if isinstance(size, int) else tuple(size)


def final_size(exp: Experiment) -> Size:
    "What the model sees last, and what TTA and the export use: the last of `aug_sizes`, else `aug_size`."
    return exp.aug_sizes[-1] if exp.aug_sizes else exp.aug_size


def _techniques(exp: Experiment):
    "Raise on technique fields out of range."
    for key in ('mixup', 'cutmix'):
        a = getattr(exp, key)
        if not (math.isfinite(a) and a >= 0):
            raise PaddyError(f"{exp.name}: {key}={a} must be a Beta alpha ≥ 0, 0 for off (timm's recipe: mixup = 0.8, "
                             "cutmix = 1.0)")
    if not 0 <= exp.mix_switch <= 1: raise PaddyError(f"{exp.name}: mix_switch={exp.mix_switch} must be a chance, "
                                                      "from 0 to 1")
    if not 0 <= exp.mix_off_epochs <= exp.epochs:
        raise PaddyError(f"{exp.name}: mix_off_epochs={exp.mix_off_epochs} must be from 0 to epochs={exp.epochs}")
    if not 0 <= exp.label_smoothing < 1:
        raise PaddyError(f"{exp.name}: label_smoothing={exp.label_smoothing} must be in [0, 1): 0.1 is usual, 0 is off")
    if not 0 <= exp.ema < 1:
        raise PaddyError(f"{exp.name}: ema={exp.ema} must be a decay in [0, 1): 0.999 is usual, 0 is off")
    if not (math.isfinite(exp.lr_mult) and exp.lr_mult >= 1):
        raise PaddyError(f"{exp.name}: lr_mult={exp.lr_mult} must be ≥ 1: after the frozen epoch the body trains "
                         "lr_mult times slower than the head (fastai's fine_tune: 100)")
    if exp.freeze_stride < 0:
        raise PaddyError(f"{exp.name}: freeze_stride={exp.freeze_stride} must be a stride ≥ 0, e.g. 8, or 0 for none")
    sizes = [hw(s) for s in exp.aug_sizes]
    if min((min(s) for s in sizes), default=1) < 1: raise PaddyError(f"{exp.name}: aug_sizes must be positive")
    if any(b[0] < a[0] or b[1] < a[1] or a == b for a, b in zip(sizes, sizes[1:])):
        raise PaddyError(f"{exp.name}: aug_sizes={list(exp.aug_sizes)} must grow from each size to the next, "
                         "small to large, e.g. aug_sizes = [(128, 96), (192, 144), (224, 168)]")
    if len(sizes) > exp.epochs:
        raise PaddyError(f"{exp.name}: aug_sizes has {len(sizes)} sizes for {exp.epochs} epochs: give at most one "
                         "size an epoch, or more epochs")


def validate(exp: Experiment) -> list[str]:
    "Raise on fields that cannot train; return warnings for ones that train badly (train/learner.py checks the arch)."
    if exp.resize not in RESIZE_METHODS:
        raise PaddyError(f"{exp.name}: resize='{exp.resize}' must be one of {', '.join(RESIZE_METHODS)}")
    if exp.accum < 1 or exp.bs % exp.accum:
        raise PaddyError(f"{exp.name}: accum={exp.accum} must be ≥1 and divide bs={exp.bs}")
    if not 0 < exp.valid_pct < 1: raise PaddyError(f"{exp.name}: valid_pct={exp.valid_pct} must be between 0 and 1")
    if isinstance(exp.lr, str) and exp.lr != 'find' or not isinstance(exp.lr, str) and not (math.isfinite(exp.lr)
                                                                                           and exp.lr > 0):
        raise PaddyError(f"{exp.name}: lr={exp.lr!r} must be a positive number (Road to the Top used 0.01), or 'find' "
                         "for fastai's learning-rate finder")
    if not 0 < exp.min_scale <= 1:
        raise PaddyError(f"{exp.name}: min_scale={exp.min_scale} must be above 0 and at most 1, the share of the image "
                         "a random crop keeps (0.75 by default)")
    if exp.compile_mode not in COMPILE_MODES:
        raise PaddyError(f"{exp.name}: compile_mode='{exp.compile_mode}' must be one of {', '.join(COMPILE_MODES)}")
    if min(*hw(exp.item_size), *hw(exp.aug_size), exp.epochs, exp.bs) < 1:
        raise PaddyError(f"{exp.name}: sizes, epochs and bs must be positive")
    _techniques(exp)
    sized = [('item_size', exp.item_size)] + ([('aug_sizes', s) for s in exp.aug_sizes] or [('aug_size', exp.aug_size)])
    msgs = [f"{exp.name}: {key}={size} has a side that is not a multiple of 32, which wastes compute or "
            "distorts the last feature map"
            for key, size in sized if any(s % 32 for s in hw(size))]
    for m in msgs: print(f'warning: {m}', file=sys.stderr)
    return msgs


def table(folder: Path | None = None) -> str:
    "Every experiment in `folder` as a text table, one row each."
    import pandas as pd
    rows = []
    for n in available(folder):
        try: rows.append(vars(load(n, folder=folder)))
        except PaddyError as e: rows.append(dict(name=n, arch=f'error: {e}'))
    if not rows:
        raise PaddyError(f"no experiments in {folder or experiments_dir()}/: add one, e.g. copy "
                         "experiments/convnext_small_squish.py")
    return pd.DataFrame(rows).fillna('').to_string(index=False)
