"""The project folder, which is paddy's database: the path of every artefact in its top folders, and every lock's name,
is made here. Some names inside sweep, playbook, fold and state folders are still built where they are used (issue 46
moves them here). A `Workspace` is handed to the library's functions, or taken from `here()`, which the CLI sets from
the current folder; a test makes one under its own temporary folder.

    models/<run>.json           a finished run's record (written last: it marks the run finished)
    models/<run>.pkl            its exported Learner
    models/<run>.state/         a stopped run's rebuild (run.json), last epoch (model.pth) and lock
    models/<cv>.folds/          a CV run's plan (cv.json), lock and K fold runs (a workspace of their own, `folds_of`)
    preds/<run>.npz             its validation and test probabilities; preds/<cv>.folds/ the folds'
    folds/<digest>.csv          fold plans, shared by every CV run of one plan
    sweeps/<name>/              a sweep's arguments and one log a job
    playbooks/<name>/           a playbook's state
    submissions/<name>.csv|json an ensemble's submission and its record; submissions/log.csv what was submitted
    exports/<run>/              a run (or an ensemble) exported to load anywhere: model.safetensors, config.json, …
    reports/                    reports, interpretations, curves and lr-find plots
    data/                       the competition's files and the small copies made of them
    kaggle-runs.csv             what was pushed to Kaggle
"""
import contextlib, contextvars
from dataclasses import dataclass, fields, replace
from pathlib import Path

COMPETITION = 'paddy-disease-classification'
FOLDERS = ('models', 'preds', 'folds', 'sweeps', 'playbooks', 'submissions', 'reports', 'data', 'exports')


@dataclass(frozen=True)
class Workspace:
    """Where each artefact of a project lives. Each folder is `root/<name>` unless given: `paddy results --models DIR`
    reads another folder of models, and a CV run's folds are a workspace of their own inside the CV run's."""
    root: Path = Path('.')
    models: Path | None = None
    preds: Path | None = None
    folds: Path | None = None
    sweeps: Path | None = None
    playbooks: Path | None = None
    submissions: Path | None = None
    reports: Path | None = None
    data: Path | None = None
    exports: Path | None = None

    def __post_init__(self):
        object.__setattr__(self, 'root', Path(self.root))
        for f in fields(self)[1:]:  # Path('.') / 'models' is Path('models'): messages name paths as they always did
            v = getattr(self, f.name)
            object.__setattr__(self, f.name, self.root / f.name if v is None else Path(v))

    # a run's artefacts
    def record(self, run: str) -> Path: return self.models / f'{run}.json'
    def model(self, run: str) -> Path: return self.models / f'{run}.pkl'
    def probs(self, run: str) -> Path: return self.preds / f'{run}.npz'
    def state(self, run: str) -> Path: return self.models / f'{run}.state'
    def state_info(self, run: str) -> Path: return self.state(run) / 'run.json'
    def checkpoint(self, run: str) -> Path: return self.state(run) / 'model.pth'
    def state_history(self, run: str) -> Path: return self.state(run) / 'history.json'  # the epochs, readable
    def finished(self, run: str) -> bool: return self.record(run).exists()
    def predicted(self, run: str, when: str) -> Path: return self.preds / 'predicted' / f'{run}-{when}.npz'

    def lock(self, run: str) -> Path:
        "The lock that the process training `run` holds: in a CV run's folder of folds, else in the run's state."
        cv = self.cv(run)
        return (cv if cv.is_dir() else self.state(run)) / 'lock'

    # a CV run's
    def cv(self, run: str) -> Path: return self.models / f'{run}.folds'
    def cv_plan(self, run: str) -> Path: return self.cv(run) / 'cv.json'
    def cv_plans(self) -> list[Path]: return sorted(self.models.glob('*.folds/cv.json'))

    def folds_of(self, cv: str) -> 'Workspace':
        "Where CV run `cv`'s fold runs live, out of sight of `paddy results` and `paddy ensemble`."
        return replace(self, models=self.cv(cv), preds=self.preds / f'{cv}.folds')

    def fold_plan(self, digest: str) -> Path: return self.folds / f'{digest}.csv'

    # what runs use many runs, and what they make
    def records(self) -> list[Path]: return sorted(self.models.glob('*.json'))
    def states(self) -> list[Path]: return sorted(self.models.glob('*.state/run.json'))
    def stopped(self) -> list[str]: return [f.parent.name.removesuffix('.state') for f in self.states()]
    def sweep(self, name: str) -> Path: return self.sweeps / name
    def sweep_log(self, name: str, job: str) -> Path: return self.sweep(name) / f'{job}.log'
    def sweep_lock(self, name: str) -> Path: return self.sweep(name) / 'lock'  # held while the sweep runs
    def playbook(self, name: str) -> Path: return self.playbooks / name
    def playbook_state(self, name: str) -> Path: return self.playbook(name) / 'state.json'
    def submission(self, name: str) -> Path: return self.submissions / f'{name}.csv'
    def ensemble_record(self, name: str) -> Path: return self.submissions / f'{name}.json'
    def export(self, name: str) -> Path: return self.exports / name
    def folder_preds(self, model: str, when: str) -> Path: return self.preds / 'folders' / f'{model}-{when}.csv'
    def interpretation(self, name: str) -> Path: return self.reports / f'interpret-{name}'
    def report(self, name: str, ext: str) -> Path: return self.reports / f'{name}.{ext}'
    def competition(self) -> Path: return self.data / COMPETITION
    def small_copy(self, data: Path, size: int) -> Path: return self.data / f'{Path(data).name}-{size}'
    def demo_data(self) -> Path: return self.data / 'demo'  # scikit-learn's digits, laid out as the competition
    @property
    def submitted_log(self) -> Path: return self.submissions / 'log.csv'
    @property
    def kaggle_log(self) -> Path: return self.root / 'kaggle-runs.csv'


_HERE = contextvars.ContextVar('workspace', default=Workspace())


def here() -> Workspace:
    "The workspace of this process: the current folder's, unless `using` set another."
    return _HERE.get()


@contextlib.contextmanager
def using(ws: Workspace):
    "Make `ws` what `here()` returns inside the block: the CLI's `--models`, a test's temporary project."
    token = _HERE.set(ws)
    try: yield ws
    finally: _HERE.reset(token)
