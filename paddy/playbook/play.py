"""`paddy playbook NAME`: the stages in order, each skipped when the run's state says it is done, under a lock, with the
summary rewritten after each; `--dry-run` prints the plan and spends nothing; `--status` says where a run stands."""
import time
from pathlib import Path

from ..data import find_data
from ..errors import PaddyError, check_hours
from ..files import is_run_name
from . import plan as P
from . import stages as S
from . import summary
from .book import load_playbook
from .state import STAGES, State, locked
from ..workspace import Workspace, here


def run_name(book_name: str, data: Path, name: str | None) -> str:
    name = name or f'{book_name}-{data.name}'
    if not is_run_name(name): raise PaddyError(f"--name {name}: give a plain name, without a path")
    return name


def dry_run(r: S.PlaybookRun, state: dict | None) -> dict:
    "The plan, from the runs on record; nothing trains and nothing is written."
    est, why = S.screen_plan(r, r.data)
    stages = (state or {}).get('stages', {})
    print(f"{r.name}: {why}" + (' (done)' if 'screen' in stages else ''))
    for e in est: print(f'  screen {e}')
    left = r.left() - r.margin() - (0 if 'screen' in stages else sum(e.seconds for e in est))
    chosen = stages.get('rank', {}).get('chosen') or ([e.label for e in est] or [r.book.first()])[:max(1, r.book.top)]
    if 'rank' not in stages and est:
        print(f"  the final sweep takes the top {r.book.top} by TTA error, within noise the faster and more diverse "
              f"first; until screening ranks them, the plan shows the first {len(chosen)}")
    keep, drop, epochs, why, grow = S.final_plan(r, chosen, stages.get('screen', {}), left)
    print(P.table(keep, drop, left) + f'\n  epochs: {epochs} ({why})')
    return dict(screen=[vars(e) for e in est], keep=[vars(e) for e in keep], drop=[vars(e) for e in drop],
                epochs=epochs, grow=grow)


def play(name: str, data=None, hours: float | None = None, run: str | None = None, dry: bool = False,
             message: str | None = None, gpus: str | None = None, check=None, submit=None,
             ws: Workspace | None = None) -> dict:
    """Run playbook `name` on `data` within `hours` as run `run` (default NAME-DATASET), from its first unfinished
    stage. `check(csv, data)` and `submit(csv, message, data)` are the submission's lint and upload (the CLI passes
    the Kaggle client's), so the playbook itself never reaches Kaggle."""
    check_hours(hours)
    book = load_playbook(name)  # an unknown candidate fails here, before anything trains
    path = find_data(data)
    name = run_name(book.name, path, run)
    ws = ws or here()
    folder = ws.playbook(name)
    args = dict(playbook=book.name, data=str(path.resolve()), hours=hours)
    if dry:
        f = ws.playbook_state(name)
        state = State.read(f) if f.exists() else None
        return dry_run(S.PlaybookRun(book, name, path, hours, gpus, state.spent() if state else 0.0, ws),
                       state and state.info)
    with locked(folder):
        s = State.open(folder, args)
        r = S.PlaybookRun(book, name, path, hours, gpus, s.spent(), ws)
        todo = s.first_unfinished()
        if todo in ('check', 'shrink', 'screen'): S.affordable(r, path)  # before any stage: the copy has as many images
        s.save()
        if todo is None:
            print(f"{name}: every stage is done; see {folder / 'summary.md'}")
            return s.info
        print(f"{name}: playbook {book.name} on {path}" + (f", {r.left() / 3600:.2f} h left of {hours:g}" if hours
                                                            else ', no time limit')
              + (f"; continuing at stage {STAGES.index(todo) + 1}, {todo}" if todo != 'check' else ''), flush=True)
        for stage in STAGES:
            if s.done(stage): continue
            print(f'== {name}: stage {STAGES.index(stage) + 1} of {len(STAGES)}, {stage}', flush=True)
            t0 = time.time()
            what = step(stage, r, s, message, check, submit)
            s.record(stage, time.time() - t0, **what)
            summary.write(s, name)
        print(f"{name}: done in {s.spent() / 60:.0f} min; {folder / 'summary.md'}")
        return s.info


def step(stage: str, r: S.PlaybookRun, s: State, message, check, submit) -> dict:
    "What stage `stage` records, done now."
    st = s.info['stages']
    if stage == 'check': return S.check(r)
    if stage == 'shrink': return S.shrink(r)
    if stage == 'screen':  # a new session (a Kaggle kernel's) has lost the small copy: made again, reusing any part
        data = Path(st['shrink']['data'])
        return S.screen(r, data if data.is_dir() else Path(S.shrink(r)['data']))
    if stage == 'rank': return S.rank(r, st['screen'])
    if stage == 'final':
        if not r.book.top: return dict(runs=[], skipped='top = 0: the screening runs are the ensemble\'s candidates')
        return S.final(r, st['rank']['chosen'], st['screen'])
    if stage == 'ensemble':
        runs = S.final_runs(r) if r.book.top else sorted(st['screen']['runs'].values())
        if not runs: raise PaddyError(f"no final run of {r.name} finished: see {r.ws.sweep(r.sweep_name('final'))}/")
        return S.ensemble(r, runs)
    csv = Path(st['ensemble']['csv'])
    out = dict(checked=check(csv, r.data) if check else None, submitted=None)
    if message or r.book.submit:
        if not message: raise PaddyError(f"{r.book.name} submits its ensemble: give the message with -m")
        out['submitted'] = submit(csv, message, r.data)
    return out


def progress(name: str, data=None, run: str | None = None) -> str:
    "Where a playbook run stands: each stage, done (with its time) or to do, and the budget left."
    book = load_playbook(name)
    path = find_data(data)
    name = run_name(book.name, path, run)
    f = here().playbook_state(name)
    if not f.exists(): return f"{name}: not started; `paddy playbook {book.name}` starts it"
    s = State.read(f)
    st, hours = s.info['stages'], s.info['args'].get('hours')
    lines = [f"{name}: playbook {book.name}, started {s.info.get('started')}"
             + (f", {max(0.0, hours * 3600 - s.spent()) / 3600:.2f} h of {hours:g} left" if hours else '')]
    lines += [f"  {k:<9} " + (f"done, {st[k]['seconds'] / 60:.1f} min" if k in st else 'to do') for k in STAGES]
    return '\n'.join(lines)

