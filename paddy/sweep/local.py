"""The local engine, the default: this machine's GPUs, one `paddy train` process each at a time, from a queue; on the
CPU, one run at a time."""
import queue, signal, socket, subprocess, threading, time

from ..errors import PaddyError
from .jobs import execute, let_end


def devices(gpus: str | None) -> list[str | None]:
    "The GPUs to use, one process each; `[None]` (no GPU here) or `['']` (`none`) is the CPU, one run at a time."
    import torch
    n = torch.cuda.device_count()
    if gpus is not None and gpus.strip().lower() == 'none': return ['']  # CUDA_VISIBLE_DEVICES='': no GPU, even here
    if gpus is None: return [str(i) for i in range(n)] or [None]
    ids = [g.strip() for g in gpus.split(',') if g.strip()]
    bad = [g for g in ids if not g.isdigit() or int(g) >= n]
    if bad or not ids:
        raise PaddyError(f"--gpus {gpus}: this machine has {n} GPU{'s' * (n != 1)}"
                         + (f" (0…{n - 1})" if n else ": leave out --gpus to run on CPU"))
    return ids


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


class Local:
    "This machine's GPUs (`--gpus`, default all), one run each at a time, or the CPU, one run at a time."

    def __init__(self, gpus: str | None = None): self.devs = devices(gpus)

    def open(self, s) -> str:
        return 'CPU, one at a time' if self.devs in ([None], ['']) else f"GPU {','.join(self.devs)}, one run per GPU"

    def close(self): pass

    def run(self, s, todo: list[str], go, done) -> dict[str, int | None]:
        """Every job in `todo` that `go(job)` lets start, `done(job, outcome)` told of each; Ctrl-C stops the running
        ones with SIGTERM, which keeps each run's last epoch, then goes on up."""
        stop, procs, lock = threading.Event(), {}, threading.Lock()

        def launch(job, dev):
            if not go(job): return None

            def popen(*a, **kw):
                with lock:
                    if stop.is_set(): return None
                    procs[job] = p = subprocess.Popen(*a, **kw)
                    return p

            def started(run):
                what = f'resume {job} ({run})' if run else f'start {job}'
                print(f'  {what} on {"GPU " + dev if dev else "CPU"} → {s.log(job)}', flush=True)

            where = f"{socket.gethostname()}, " + (f'GPU {dev}' if dev else 'CPU')
            out = execute(s, job, dev, len(self.devs), where, popen=popen, started=started)
            with lock: procs.pop(job, None)
            if out is None or stop.is_set(): return None
            done(job, out)
            return out.get('rc')

        try: return run_queue(todo, self.devs, launch, stop)
        except KeyboardInterrupt:
            stop.set()
            with lock: running = list(procs.values())
            for p in running: p.send_signal(signal.SIGTERM)  # train then removes its unfinished run's files
            for p in running: let_end(p)
            raise
