"""A sweep, driven: every job not yet finished, handed to an engine (this machine's, or a Ray cluster's), within the
time given; what came of each is said as it ends and recorded in `sweeps/<name>/result.json`."""
import threading, time

from .. import owner
from ..errors import PaddyError, check_hours
from ..provenance import stamp
from ..files import write_json
from ..workspace import Workspace
from .jobs import Sweep, finished, stopped

ENGINES = ('local', 'ray')


def engine_for(engine: str, gpus: str | None, address: str | None):
    "The scheduler that runs the jobs: `local` (this machine, the default) or `ray` (a Ray cluster, `paddy[ray]`)."
    if engine not in ENGINES: raise PaddyError(f"--engine {engine}: give {' or '.join(ENGINES)}")
    if address is not None and engine != 'ray':
        raise PaddyError(f"--address {address} names a Ray cluster: add --engine ray, or leave out --address")
    if engine == 'local':
        from .local import Local
        return Local(gpus)
    if gpus is not None:
        raise PaddyError(f"--gpus {gpus} picks this machine's GPUs, and with --engine ray the cluster gives each run "
                         "one of its own: leave out --gpus")
    from .ray import Ray
    return Ray(address)


def sweep(exps, repeat=1, gpus=None, sets=(), data=None, name=None, wandb=False, ws: Workspace | None = None,
          fit_memory=None, hours: float | None = None, folds: int | None = None,
          engine: str = 'local', address: str | None = None, test_preds: bool = True, full: bool = False) -> dict:
    """Run every job not yet finished; Ctrl-C stops the running ones (they leave nothing behind) and the same command
    resumes. With `hours`, start no job that would not end within that time of the start, each job's time estimated
    as the mean of those that finished (the first ones start regardless); the ones skipped are said and recorded."""
    check_hours(hours, '11.5')
    runner = engine_for(engine, gpus, address)  # its flags and the cluster's address first: they fail fast
    s = Sweep(exps, repeat, sets, data, name, wandb, ws, fit_memory, folds, test_preds, full)
    refuse = (lambda who: f"sweep {s.name} is running already, in {who}: wait for it to end, or give this one another "
                          "--name")
    with owner.owned(s.ws.sweep_lock(s.name), refuse):  # started twice at once, every job would train twice
        try: return _sweep(s, runner, hours)
        finally: runner.close()


def outcome(meta, out: dict, log) -> str:
    "What became of a job: its run and error (none for a fit on every image, which validates nothing), or its failure."
    if meta: return (f"error {meta.error_rate:.4f}" if meta.error_rate is not None else 'every image') + f", {meta.run}"
    return f"FAILED ({out['lost']})" if out.get('lost') else f"FAILED (exit {out.get('rc')}), see {log}"


def _sweep(s: Sweep, runner, hours: float | None) -> dict:
    deadline, took, skipped, busy = None, [], [], []
    done = finished(s.name, s.ws)
    todo = [j for j in s.exp if j not in done]
    # a cluster that cannot run the sweep is said before it is recorded; with nothing to run, none is needed
    where = runner.open(s) if todo else None
    s.start()
    halted = {j: r for j, r in stopped(s.name, s.ws).items() if j in todo}
    print(f"sweep {s.name}: {len(s.exp)} run{'s' * (len(s.exp) != 1)}, {len(done)} already finished, "
          f"{len(todo)} to go" + (f" ({len(halted)} stopped, to resume)" if halted else '')
          + (f', on {where}' if where else '') + f'; logs in {s.folder}/', flush=True)
    lock, counter = threading.Lock(), [len(done)]

    def go(job) -> bool:
        "Whether `job` may start now: not when it would end past --hours."
        if deadline is None: return True
        with lock: need = sum(took) / len(took) if took else 0.0
        if time.time() + need <= deadline: return True
        with lock: skipped.append(job)
        print(f'  skip {job}: it would take about {need / 60:.0f} min and end past --hours', flush=True)
        return False

    def ended(job, out: dict):
        "Say what came of `job`."
        with lock:
            if out.get('busy'):  # an orphan of a sweep killed before children died with it, or a `--resume` by hand
                busy.append(job)
                print(f"  skip {job}: {out['resumed']} is being trained by {out['busy']}; the same command goes on "
                      "once that ends", flush=True)
                return
            rc = out.get('rc')
            if rc == 0: counter[0] += 1
            if rc == 0 and not out.get('already'): took.append(out['seconds'])
            meta = finished(s.name, s.ws).get(job) if rc == 0 else None
            what = outcome(meta, out, s.log(job))
            if out.get('node'): what += f", on {out['where']}" + (', resumed' if out.get('resumed') else '')
            if out.get('already'): what += ', finished by its earlier attempt'
            print(f"  [{counter[0]}/{len(s.exp)}] {job}: {what}, {out.get('seconds', 0):.0f}s", flush=True)

    if hours is not None: deadline = time.time() + hours * 3600  # from the first start, setup aside
    codes = runner.run(s, todo, go, ended) if todo else {}
    failed = [j for j, rc in codes.items() if rc]
    write_json(s.folder / 'result.json', dict(finished=sorted(finished(s.name, s.ws)), failed=failed,
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
    return finished(s.name, s.ws)
