"""One map over many images: in worker processes when there are enough to pay for starting them, with a progress bar."""
import sys


def pmap(fn, jobs, workers: int, desc: str, chunksize: int = 64, serial_below: int = 256, total: int | None = None,
         initial: int = 0, leave: bool = False, initializer=None, initargs: tuple = ()) -> list:
    """`fn` of each of `jobs`, in order, after `initializer(*initargs)` in each process that runs them; a progress bar
    on a terminal counts them (from `initial` of `total`)."""
    from tqdm.auto import tqdm
    jobs = list(jobs)
    bar = dict(total=len(jobs) if total is None else total, initial=initial, desc=desc, unit='img', leave=leave,
               file=sys.stderr, disable=None)
    if workers < 2 or len(jobs) < serial_below:
        if initializer: initializer(*initargs)
        return [fn(j) for j in tqdm(jobs, **bar)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    # spawned, not forked: a fork of a process whose torch has started its threads (inside `paddy train`) can hang, and
    # an executor raises where a Pool would wait for ever on a worker that died. tqdm's `process_map` is not used: with
    # a spawn context it fails (its bar lock is made in the fork context), and it counts chunks, not images.
    with ProcessPoolExecutor(workers, mp_context=mp.get_context('spawn'), initializer=initializer,
                             initargs=initargs) as ex:
        return list(tqdm(ex.map(fn, jobs, chunksize=chunksize), **bar))
