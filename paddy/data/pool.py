"""One map over many images: in worker processes when there are enough to pay for starting them, with a progress bar."""
import sys


def pmap(fn, jobs, workers: int, desc: str, chunksize: int = 64, serial_below: int = 256, total: int | None = None,
         initial: int = 0, leave: bool = False) -> list:
    "`fn` of each of `jobs`, in order; a progress bar on a terminal counts them (from `initial` of `total`)."
    from tqdm.auto import tqdm
    jobs = list(jobs)
    bar = dict(total=len(jobs) if total is None else total, initial=initial, desc=desc, unit='img', leave=leave,
               file=sys.stderr, disable=None)
    if workers < 2 or len(jobs) < serial_below: return [fn(j) for j in tqdm(jobs, **bar)]
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers) as ex: return list(tqdm(ex.map(fn, jobs, chunksize=chunksize), **bar))
