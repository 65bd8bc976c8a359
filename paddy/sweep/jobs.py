"""What a sweep is: its jobs `<exp>-<k>`, their `paddy train` commands, which are finished or stopped, and how one job
runs, wherever an engine runs it."""
import hashlib, json, os, signal, subprocess, sys, time
from pathlib import Path

from .. import owner
from ..data import find_data, num_workers, read_train
from ..data.verify import ensure
from ..errors import PaddyError
from ..files import Damaged, is_run_name, read_json, write_json
from ..folds import check_k
from ..provenance import stamp
from ..results import metas
from ..spec import load_sweep, recipe
from ..train.settings import Settings
from ..workspace import Workspace, here


def job_of(tag, name: str) -> str | None:
    "The job in a run's `sweep` tag (`<sweep>/<job>`) when the run belongs to sweep `name`."
    tag = str(tag or '')
    return tag.split('/', 1)[1] if tag.startswith(f'{name}/') else None


def finished(name: str, ws: Workspace | None = None) -> dict:
    "Job → the record (`RunRecord`) of each run this sweep has finished: a run is finished once its .json is written."
    out = {}
    for _, meta in metas(ws, warn=False):
        job = job_of(meta.sweep, name)
        if job: out[job] = meta
    return out


def stopped(name: str, ws: Workspace | None = None) -> dict[str, str]:
    """Job → run of this sweep's stopped runs, whose saved state (`models/<run>.state/`, or a CV run's plan in
    `models/<run>.folds/cv.json`) a resume goes on from."""
    out, ws = {}, ws or here()
    cvs = [f for f in ws.cv_plans() if not ws.finished(f.parent.name.removesuffix('.folds'))]
    for f in ws.states() + cvs:
        try: info = read_json(f)
        except Damaged: continue  # caught mid-write: that run is not stopped
        job = job_of((info.get('settings') or {}).get('sweep'), name)
        if job and is_run_name(str(info.get('run', ''))): out[job] = info['run']
    return out


class Sweep:
    "The jobs `<exp>-<k>` for k in 1…repeat of every experiment, under sweeps/<name>/ with one log per job."

    def __init__(self, exps, repeat=1, sets=(), data=None, name=None, wandb=False, ws: Workspace | None = None,
                 fit_memory=None, folds=None, test_preds: bool = True, full: bool = False):
        if folds is not None and full:
            raise PaddyError("a sweep's jobs are CV runs (folds) or final fits on every image (full), not both")
        specs = load_sweep(exps, sets, repeat)  # a typo in any experiment stops the sweep before any run starts
        if folds is not None: check_k(read_train(find_data(data)), folds)  # before any job starts
        ensure(find_data(data), num_workers())  # as does bad data, instead of failing every run in turn
        # what each experiment trains, resolved: a sweep of an edited experiment is another sweep, never the old one's
        self.args = dict(experiments=list(exps), recipes={s.name: recipe(s) for s in specs}, repeat=repeat,
                         set=list(sets), data=None if data is None else str(Path(data).resolve()), wandb=wandb)
        if fit_memory is not None:
            self.args['fit_memory'] = fit_memory  # only when given: older sweeps keep their names
        if folds is not None: self.args['folds'] = folds
        if not test_preds: self.args['test_preds'] = False  # only when off: other sweeps keep their names
        if full: self.args['full'] = True  # each run a final fit on every image (`paddy train --full`)
        self.name = name or 'sweep-' + hashlib.sha1(json.dumps(self.args, sort_keys=True).encode()).hexdigest()[:8]
        self.exp = {f'{s.name}-{k}': e for s, e in zip(specs, exps) for k in range(1, repeat + 1)}
        self.ws = ws or here()
        self.folder = self.ws.sweep(self.name)

    def start(self):
        "Record the sweep's arguments, or check them against the record when it is started again."
        manifest = self.folder / 'sweep.json'
        if manifest.is_file():
            was = read_json(manifest, 'move it aside, or give this sweep another --name').get('args') or {}
            old = was.get('recipes') or {}
            edited = [e for e, r in self.args['recipes'].items() if old.get(e) not in (None, r)]
            if edited:
                raise PaddyError(f"sweep {self.name} trained another recipe of {', '.join(edited)}, edited since (see "
                                 f"{manifest}): give another --name to sweep the new one")
            if was != self.args:
                raise PaddyError(f"sweep {self.name} was started with other arguments (see {manifest}): use "
                                 "another --name")
        else: write_json(manifest, dict(name=self.name, args=self.args, jobs=list(self.exp), **stamp()))

    def log(self, job: str) -> Path: return self.ws.sweep_log(self.name, job)

    def command(self, job: str, stopped: str | None = None) -> list[str]:
        "The job's `paddy train`; for a `stopped` run, its resume, which keeps the experiment and settings it recorded."
        a, paddy = self.args, [sys.executable, '-m', 'paddy.cli']
        if stopped: return paddy + Settings(data=a['data'], wandb=a['wandb']).argv('train', '--resume', stopped)
        s = Settings(data=a['data'], wandb=a['wandb'], fit_memory=a.get('fit_memory'), sweep=f'{self.name}/{job}',
                     test_preds=a.get('test_preds', True))
        cv = ['--folds', str(a['folds'])] if a.get('folds') else ['--full'] if a.get('full') else []
        return paddy + s.argv('train', self.exp[job], *cv, sets=a['set'])


def run_env(dev: str | None, n_devices: int, base=None) -> dict:
    """A run's environment: its one GPU, a share of the CPU cores for its image loaders when runs go in parallel, and
    this process's id, so that the run stops when the sweep dies (see `owner.die_with_parent`)."""
    env = dict(os.environ if base is None else base)
    env[owner.PARENT] = str(os.getpid())
    if dev is not None: env['CUDA_VISIBLE_DEVICES'] = dev
    if n_devices > 1 and 'PADDY_WORKERS' not in env:
        env['PADDY_WORKERS'] = str(max(1, (os.cpu_count() or 1) // n_devices))
    return env


def poll(p: subprocess.Popen) -> int | None:
    "`p`'s exit code, or None after a second: a wait that returns now and then lets a stop (Ray's cancel) in."
    try: return p.wait(timeout=1)
    except subprocess.TimeoutExpired: return None


def let_end(p: subprocess.Popen):
    "Give a job's `paddy train`, sent SIGTERM, a minute to save its last epoch and end; then kill it."
    try: p.wait(timeout=60)
    except subprocess.TimeoutExpired: p.kill()


def now() -> str: return time.strftime('%Y-%m-%dT%H:%M:%S')


def execute(s: Sweep, job: str, dev: str | None, n_devices: int, where: str, popen=subprocess.Popen,
            started=None, wait: float = 0.0) -> dict | None:
    """Run `job`'s `paddy train` once, here, its output appended to `sweeps/<name>/<job>.log` under a line that says
    where (`where`: the host or node, and the GPU), and a last line with its exit code. It is a fresh run, or the
    resume of its stopped one, as the disk says now, so that a job started again after its machine died goes on from
    its last saved epoch. A stopped run that another process trains is left to it (`busy`), after up to `wait`
    seconds for that process to end. `popen` may decline to start (None: the sweep is stopping); `started(run)` hears
    of a start. Returns what happened: rc, seconds, where, resumed (the run resumed), already (the run that finished
    the job meanwhile: nothing is trained twice), or busy (its holder, in words)."""
    end = time.time() + wait
    while True:
        meta = finished(s.name, s.ws).get(job)  # by an earlier attempt that lived on when its node was lost
        if meta: return dict(rc=0, seconds=0.0, where=where, resumed=None, already=meta.run)
        run = stopped(s.name, s.ws).get(job)
        held = owner.holder(s.ws.lock(run)) if run else None
        if not held: break
        if time.time() >= end: return dict(busy=owner.who(held), resumed=run, where=where)
        time.sleep(1)  # a lost node's run, saving its last epoch as it stops
    cmd, log = s.command(job, run), s.log(job)
    with open(log, 'a') as f:  # appended: an earlier, stopped attempt keeps its log
        f.write(f"=== {now()} {' '.join(cmd)} (on {where})\n"); f.flush()
        t0 = time.time()
        p = popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=run_env(dev, n_devices))
        if p is None: return None
        if started: started(run)
        try:
            while (rc := poll(p)) is None: pass
        except KeyboardInterrupt:  # the engine stops this job (Ray's cancel): its run keeps its last epoch
            p.send_signal(signal.SIGTERM)
            let_end(p)
            raise
        f.write(f'=== {now()} exit {rc} after {time.time() - t0:.0f}s\n')
    return dict(rc=rc, seconds=time.time() - t0, where=where, resumed=run)
