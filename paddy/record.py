"""The run record, `models/<run>.json`: what a finished run is. Training writes it last (its presence marks the run
finished); an ensemble that takes a run only screened rewrites it whole once, to say when it made its test predictions
(`predict.with_test`); results, the report, the sweep, the playbook, predict, export and curves read it. One dataclass
with a schema version, one reader and one writer, in the manner of Hugging Face's `TrainerState`: every reader gets
fields, never string keys with fallbacks."""
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import PaddyError
from .files import damaged, read_json, write_json
from .spec import Experiment, from_record

SCHEMA = 1  # raise when a field changes meaning or a reader could not read an older record


@dataclass
class RunRecord:
    "One finished run (or CV run): its recipe, split, scores, time and provenance."
    run: str
    experiment: Experiment = field(default_factory=lambda: Experiment('', ''))  # what it trained, every field
    data: str | None = None                         # the data folder it trained on
    vocab: list = field(default_factory=list)
    weights: str | None = None                      # where the pretrained weights came from
    # the split and the training
    split_seed: int | None = None
    train_seed: int | None = None
    split: dict = field(default_factory=lambda: dict(kind='seed'))  # seed, fold (of a plan), full, or cv
    valid_ids: list = field(default_factory=list)
    n_train: int | None = None
    n_valid: int | None = None
    n_pseudo: int = 0
    history: list = field(default_factory=list)     # one row an epoch: epoch, frozen, losses, metrics, lr, seconds
    lr_find: dict | None = None                     # lr = 'find': both suggestions, the curve, the rate used
    # scores: the plain view's, and TTA's, which submissions are made from
    error_rate: float | None = None
    tta_error_rate: float | None = None
    variety_error_rate: float | None = None
    confused: list = field(default_factory=list)
    ema: dict | None = None
    # time
    fit_time: float | None = None
    img_per_s: float | None = None
    seconds: dict = field(default_factory=dict)     # outside the fit: start, prepare, validate, export, each TTA
    test_preds: bool | dict = True                  # False for a run only screened; a dict once an ensemble made them
    resumed: bool = False
    resumed_from_epoch: int | None = None
    # where and how
    device: str | None = None
    precision: str | None = None
    mixed_precision: bool = False
    channels_last: bool = False
    world_size: int = 1
    peak_gpu_mem_gb: float | None = None
    fit_memory: dict | None = None
    batch_shapes: list | None = None
    item_cache: str | None = None
    item_cache_where: str | None = None
    item_cache_why: str | None = None
    compile: dict | None = None
    files: dict = field(default_factory=dict)
    sweep: str | None = None                        # NAME/JOB when a sweep trained it
    # a CV run's: its folds' runs and the spread of their errors (its own errors are out of fold)
    runs: list | None = None
    fold_errors: list | None = None
    fold_mean: float | None = None
    fold_std: float | None = None
    # provenance (provenance.stamp)
    created: str | None = None
    versions: dict = field(default_factory=dict)
    git_commit: str | None = None
    schema: int = SCHEMA

    def __post_init__(self):
        # as JSON, a W&B config or a test gives it: the one place a record's experiment is read from a dict
        if isinstance(self.experiment, dict): self.experiment = from_record(self.experiment)

    @property
    def name(self) -> str | None:
        "The experiment's name."
        return self.experiment.name or None

    @property
    def kind(self) -> str:
        "How it was validated: seed, fold, full or cv."
        return self.split.get('kind', 'seed')

    def to_dict(self) -> dict: return asdict(self)


KNOWN = {f.name for f in fields(RunRecord)}


def from_dict(d: dict, where: str = 'a run record') -> RunRecord:
    """`d` as a record. One of a newer schema is refused in one line; keys this paddy does not know (a later minor
    addition) are left out; a record without a run name is damaged."""
    if not isinstance(d.get('run'), str):
        raise damaged(Path(where), ValueError('it names no run'), 'move it aside: it is not a run record')
    if int(d.get('schema', 1)) > SCHEMA:
        raise PaddyError(f"{where} is a run record of schema {d['schema']}, newer than this paddy's {SCHEMA}: upgrade "
                         "paddy to read it")
    return RunRecord(**{k: v for k, v in d.items() if k in KNOWN})


def read_record(path: Path, fix: str = 'move it aside, then make it again') -> RunRecord:
    "The record in `path`; a damaged one is one line that names it and `fix`."
    return from_dict(read_json(path, fix), str(path))


def write_record(path: Path, rec: RunRecord, replace: bool = False):
    "Write `rec` to `path` whole, never over another unless `replace` (an ensemble adding a screened run's test set)."
    write_json(path, rec.to_dict(), replace=replace)
