"""A playbook run's record, `playbooks/<run>/state.json`: what each stage did and how long it took, rewritten whole
after every stage, so the same command after a stop, a crash or a reboot continues from the first unfinished one; and
its lock, so two processes never run one playbook at once."""
import json, time
from pathlib import Path

from ..errors import PaddyError
from ..owner import owned
from ..files import read_json, replaced

STAGES = ('check', 'shrink', 'screen', 'rank', 'final', 'ensemble', 'submit')
SAME = ('playbook', 'data')  # what a run is; its budget may change between sessions
# what the later stages, the status and the summary read of each stage's record
NEEDS = dict(check=(), shrink=('data',), screen=('runs', 'data'), rank=('chosen', 'why', 'better_and_faster'),
             final=('runs',), ensemble=('csv', 'members'), submit=('checked',))


class State:
    "The stages done so far, and what each recorded."

    def __init__(self, folder: Path, info: dict):
        self.folder, self.info = folder, info

    @classmethod
    def open(cls, folder: Path, args: dict) -> 'State':
        "The run's state, new (saved at its first `save`) or read back; another playbook or data folder is refused."
        f = folder / 'state.json'
        if not f.exists(): return cls(folder, dict(args=args, started=time.strftime('%Y-%m-%dT%H:%M:%S'), stages={}))
        info = cls.read(f).info
        diff = [k for k in SAME if args.get(k) != info['args'].get(k)]
        if diff:
            raise PaddyError(f"playbook run {folder.name} was started with another {' and '.join(diff)} (see {f}): "
                             "run it as it was started, or give another --name")
        info['args'] = args  # the hours may change: a new session brings its own
        return cls(folder, info)

    @classmethod
    def read(cls, f: Path) -> 'State':
        "The state in `f`, whole: a damaged file, or a stage record without what is read of it, is one line."
        fix = f"move {f.parent} aside to start the playbook again, or give it another --name"
        info = read_json(f, fix)
        if not isinstance(info.get('stages'), dict) or not isinstance(info.get('args'), dict):
            raise PaddyError(f"{f} is damaged (it lacks its args or stages): {fix}")
        for stage, rec in info['stages'].items():
            lacks = [k for k in ('seconds', *NEEDS.get(stage, ())) if not isinstance(rec, dict) or k not in rec]
            if stage not in NEEDS or lacks:
                raise PaddyError(f"{f} is damaged (its stage {stage!r} "
                                 + (f"lacks {', '.join(lacks)}" if stage in NEEDS else 'is not one of the playbook\'s')
                                 + f"): {fix}")
        return cls(f.parent, info)

    def save(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with replaced(self.folder / 'state.json') as tmp: tmp.write_text(json.dumps(self.info, indent=1, default=str))

    def done(self, stage: str) -> dict | None: return self.info['stages'].get(stage)

    def record(self, stage: str, seconds: float, **what):
        self.info['stages'][stage] = dict(seconds=round(seconds, 1), finished=time.strftime('%Y-%m-%dT%H:%M:%S'),
                                          **what)
        self.save()

    def spent(self) -> float:
        "Seconds the finished stages took, over every session: what is gone of the budget before this one."
        return sum(s['seconds'] for s in self.info['stages'].values())

    def first_unfinished(self) -> str | None: return next((s for s in STAGES if s not in self.info['stages']), None)


def continues(old: dict, new: dict) -> bool:
    "Whether state `new` is state `old` gone further: the same run, with every stage `old` recorded recorded alike."
    return (all(old.get('args', {}).get(k) == new.get('args', {}).get(k) for k in SAME)
            and all(new.get('stages', {}).get(k) == v for k, v in old.get('stages', {}).items()))


def locked(folder: Path):
    """Hold `folder/lock` while the playbook runs: a second process on the same run is refused in one line. A lock
    whose process is gone (a crash, a reboot) holds nothing."""
    return owned(folder / 'lock', lambda who: f"playbook run {folder.name} is running already, in {who}: wait for it, "
                                              "or give this one another --name")
