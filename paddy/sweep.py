"""Many runs from a queue: one `paddy train` process per GPU (or one by one on CPU), resumable, a log file each."""
import hashlib, json, os, queue, signal, subprocess, sys, threading, time
from pathlib import Path

from . import owner
from .data import find_data, num_workers, read_train
from .data.verify import ensure
from .errors import PaddyError
from .files import Damaged, is_run_name, read_json, write_json
from .folds import check_k
from .provenance import stamp
from .results import metas
from .spec import load
from .train.resume import lock as run_lock
from .train.settings import Settings


def job_of(tag, name: str) -> str | None:
    "The job in a run's `sweep` tag (`<sweep>/<job>`) when the run belongs to sweep `name`."
    tag = str(tag or '')
    return tag.split('/', 1)[1] if tag.startswith(f'{name}/') else None


def finished(name: str, models: Path = Path('models')) -> dict[str, dict]:
    "Job → metadata of the runs this sweep has finished: a run is finished once its .json is written, last."
    out = {}
    for _, meta in metas(models, warn=False):
        job = job_of(meta.get('sweep'), name)
        if job: out[job] = meta
    return out


def stopped(name: str, models: Path = Path('models')) -> dict[str, str]:
    """Job → run of this sweep's stopped runs, whose saved state (`models/<run>.state/`, or a CV run's plan in
    `models/<run>.folds/cv.json`) a resume goes on from."""
    out = {}
    cvs = [f for f in sorted(models.glob('*.folds/cv.json')) if not (models / f"{f.parent.stem}.json").exists()]
    for f in sorted(models.glob('*.state/run.json')) + cvs:
        try: info = read_json(f)
        except Damaged: continue  # caught mid-write: that run is not stopped
        job = job_of((info.get('settings') or info).get('sweep'), name)  # older states kept it at the top
        if job and is_run_name(str(info.get('run', ''))): out[job] = info['run']
    return out


def devices(gpus: str | None) -> list[str | None]:
    "The GPUs to use, one process each; `[None]` is the CPU, one run at a time."
    import torch
    n = torch.cuda.device_count()
    if gpus is None: return [str(i) for i in range(n)] or [None]
    ids = [g.strip() for g in gpus.split(',') if g.strip()]
    bad = [g for g in ids if not g.isdigit() or int(g) >= n]
    if bad or not ids:
        raise PaddyError(f"--gpus {gpus}: this machine has {n} GPU{'s' * (n != 1)}"
                         + (f" (0…{n - 1})" if n else ": leave out --gpus to run on CPU"))
    return ids


def run_env(dev: str | None, n_devices: int, base=None) -> dict:
    """A run's environment: its one GPU, a share of the CPU cores for its image loaders when runs go in parallel, and
    this process's id, so that the run stops when the sweep dies (see `owner.die_with_parent`)."""
    env = dict(os.environ if base is None else base)
    env[owner.PARENT] = str(os.getpid())
    if dev is not None: env['CUDA_VISIBLE_DEVICES'] = dev
    if n_devices > 1 and 'PADDY_WORKERS' not in env:
        env['PADDY_WORKERS'] = str(max(1, (os.cpu_count() or 1) // n_devices))
    return env


def run_queue(jobs: list[str], devs: list, launch, stop: threading.Event) -> dict[str, int]:
    """Run `launch(job, device)` for every job, at most one at a time per device; job → exit code (absent if not
    started)."""
    q, codes = queue.Queue(), {}
    for j in jobs: q.put(j)

    def worker(dev):
        while not stop.is_set():
            try: job = q.get_nowait()
            except queue.Empty: return
            codes[job] = launch(job, dev)

    threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in devs]
    for t in threads: t.start()
    while any(t.is_alive() for t in threads): time.sleep(0.2)  # a sleeping main thread still gets Ctrl-C
    return codes


class Sweep:
    "The jobs `<exp>-<k>` for k in 1…repeat of every experiment, under sweeps/<name>/ with one log per job."

    def __init__(self, exps, repeat=1, sets=(), data=None, name=None, wandb=False, root=Path('sweeps'),
                 fit_memory=None, folds=None):
        if repeat < 1: raise PaddyError(f"--repeat {repeat}: give 1 or more")
        if folds is not None: check_k(read_train(find_data(data)), folds)  # before any job starts
        specs = [load(e, sets) for e in exps]  # a typo in any experiment stops the sweep before any run starts
        ensure(find_data(data), num_workers())  # as does bad data, instead of failing every run in turn
        self.args = dict(experiments=list(exps), repeat=repeat, set=list(sets),
                         data=None if data is None else str(Path(data).resolve()), wandb=wandb)
        if fit_memory is not None:
            self.args['fit_memory'] = fit_memory  # only when given: older sweeps keep their names
        if folds is not None: self.args['folds'] = folds
        self.name = name or 'sweep-' + hashlib.sha1(json.dumps(self.args, sort_keys=True).encode()).hexdigest()[:8]
        self.exp = {f'{s.name}-{k}': e for s, e in zip(specs, exps) for k in range(1, repeat + 1)}
        if len(set(s.name for s in specs)) < len(specs):
            raise PaddyError("the same experiment is named twice: use --repeat for repeats")
        self.folder = root / self.name

    def start(self):
        "Record the sweep's arguments, or check them against the record when it is started again."
        manifest = self.folder / 'sweep.json'
        if manifest.is_file():
            if read_json(manifest, 'move it aside, or give this sweep another --name')['args'] != self.args:
                raise PaddyError(f"sweep {self.name} was started with other arguments (see {manifest}): use "
                                 "another --name")
        else: write_json(manifest, dict(name=self.name, args=self.args, jobs=list(self.exp), **stamp()))

    def command(self, job: str, stopped: str | None = None) -> list[str]:
        "The job's `paddy train`; for a `stopped` run, its resume, which keeps the experiment and settings it recorded."
        a, paddy = self.args, [sys.executable, '-m', 'paddy.cli']
        if stopped: return paddy + Settings(data=a['data'], wandb=a['wandb']).argv('train', '--resume', stopped)
        s = Settings(data=a['data'], wandb=a['wandb'], fit_memory=a.get('fit_memory'), sweep=f'{self.name}/{job}')
        cv = ['--folds', str(a['folds'])] if a.get('folds') else []
        return paddy + s.argv('train', self.exp[job], *cv, sets=a['set'])


def sweep(exps, repeat=1, gpus=None, sets=(), data=None, name=None, wandb=False, root=Path('sweeps'),
          models=Path('models'), fit_memory=None, hours: float | None = None, folds: int | None = None) -> dict:
    """Run every job not yet finished; Ctrl-C stops the running ones (they leave nothing behind) and the same command
    resumes. With `hours`, start no job that would not end within that time of the start, each job's time estimated
    as the mean of those that finished (the first ones start regardless); the ones skipped are said and recorded."""
    if hours is not None and hours <= 0:
        raise PaddyError(f"--hours {hours:g}: give the time there is, e.g. --hours 11.5")
    s = Sweep(exps, repeat, sets, data, name, wandb, root, fit_memory, folds)
    devs = devices(gpus)
    refuse = (lambda who: f"sweep {s.name} is running already, in {who}: wait for it to end, or give this one another "
                          "--name")
    with owner.owned(s.folder / 'lock', refuse):  # started twice at once, every job would train twice
        return _sweep(s, devs, models, hours)


def _sweep(s: Sweep, devs: list, models: Path, hours: float | None) -> dict:
    deadline, took, skipped, busy = None, [], [], []
    s.start()
    done = finished(s.name, models)
    todo = [j for j in s.exp if j not in done]
    halted = {j: r for j, r in stopped(s.name, models).items() if j in todo}
    where = 'CPU, one at a time' if devs == [None] else f"GPU {','.join(devs)}, one run per GPU"
    print(f"sweep {s.name}: {len(s.exp)} run{'s' * (len(s.exp) != 1)}, {len(done)} already finished, "
          f"{len(todo)} to go" + (f" ({len(halted)} stopped, to resume)" if halted else '')
          + f', on {where}; logs in {s.folder}/')
    stop, procs, lock, counter = threading.Event(), {}, threading.Lock(), [len(done)]

    def launch(job, dev):
        if deadline is not None:
            with lock: need = sum(took) / len(took) if took else 0.0
            if time.time() + need > deadline:
                with lock: skipped.append(job)
                print(f'  skip {job}: it would take about {need / 60:.0f} min and end past --hours', flush=True)
                return None
        held = owner.holder(run_lock(halted[job], models)) if job in halted else None
        if held:  # an orphan of a sweep killed before children died with it, or a `--resume` by hand
            with lock: busy.append(job)
            print(f'  skip {job}: {halted[job]} is being trained by {owner.who(held)}; the same command goes on once '
                  'that ends', flush=True)
            return None
        env = run_env(dev, len(devs))
        log, cmd = s.folder / f'{job}.log', s.command(job, halted.get(job))
        with open(log, 'a') as f:  # appended: an earlier, stopped attempt keeps its log
            f.write(f"=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)} (device {dev or 'cpu'})\n"); f.flush()
            t0 = time.time()
            with lock:
                if stop.is_set(): return None
                procs[job] = p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
            what = f'resume {job} ({halted[job]})' if job in halted else f'start {job}'
            print(f'  {what} on {"GPU " + dev if dev else "CPU"} → {log}', flush=True)
            rc = p.wait()
        with lock:
            procs.pop(job, None)
            if rc == 0: counter[0] += 1; took.append(time.time() - t0)
            meta = finished(s.name, models).get(job) if rc == 0 else None
            what = (f"error {meta['error_rate']:.4f}, {meta['run']}" if meta else f'FAILED (exit {rc}), see {log}')
            if not stop.is_set():
                print(f'  [{counter[0]}/{len(s.exp)}] {job}: {what}, {time.time() - t0:.0f}s', flush=True)
        return rc

    if hours is not None: deadline = time.time() + hours * 3600  # from the first start, setup aside
    try: codes = run_queue(todo, devs, launch, stop)
    except KeyboardInterrupt:
        stop.set()
        with lock: running = list(procs.values())
        for p in running: p.send_signal(signal.SIGTERM)  # train then removes its unfinished run's files
        for p in running:
            try: p.wait(timeout=60)
            except subprocess.TimeoutExpired: p.kill()
        raise
    failed = [j for j, rc in codes.items() if rc]
    write_json(s.folder / 'result.json', dict(finished=sorted(finished(s.name, models)), failed=failed,
                                              skipped=sorted(skipped), busy=sorted(busy), hours=hours, **stamp()),
               replace=True)
    if failed:
        raise PaddyError(f"{len(failed)} of {len(s.exp)} runs failed ({', '.join(failed)}): see their logs in "
                         f"{s.folder}/, then run the same command to retry them")
    if busy:
        print(f"sweep {s.name}: {len(busy)} of {len(s.exp)} runs skipped, as other processes train them "
              f"({', '.join(sorted(busy))}); the same command goes on with them once those end")
    if skipped:
        print(f"sweep {s.name}: {len(skipped)} of {len(s.exp)} runs skipped, as they would end past --hours "
              f"({', '.join(sorted(skipped))}); the same command runs them")
    elif not busy:
        print(f'sweep {s.name}: ' + (f'all {len(s.exp)} runs finished' if len(s.exp) > 1 else 'its run finished')
              + '; compare them with `paddy report`')
    return finished(s.name, models)
