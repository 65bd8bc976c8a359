"""How a command stops, shared by train, sweep and playbook: SIGINT and SIGTERM as Ctrl-C, the loaders' reports of a
stop kept quiet, and the process-wide warning filters, each with its reason."""
import contextlib, os, sys, warnings
from functools import partial

STOPS = []  # the signals that asked this process to stop

# noise that is not the user's doing, filtered for the whole process where the CLI or a run needs it
NOISE = {'import': dict(category=FutureWarning, module='torch.jit'),  # torch.jit's deprecation, on importing fastai
         'no validation': dict(message='Your generator is empty'),  # fastprogress, of a final fit's empty validation
         'ddp strides': dict(message='Grad strides do not match bucket view strides')}  # a copy, not a fault


def quiet(what: str):
    "Filter the warnings `NOISE[what]` names, for the whole process."
    warnings.filterwarnings('ignore', **NOISE[what])


@contextlib.contextmanager
def stoppable():
    """SIGTERM (a scheduler, `timeout`, a stopping sweep) and SIGINT stop the work as Ctrl-C does, even when started
    with SIGINT ignored (`cmd &` in a script), so an unfinished run still removes its files. On the way out the
    process's handlers and hooks are as they were: a test or a notebook runs many commands in one process."""
    import signal

    owner = os.getpid()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    hook = sys.unraisablehook

    def stop(signum, frame):
        # a loader worker forked moments ago still holds this handler: the stop is its end, without a traceback
        if os.getpid() != owner: os._exit(128 + signum)
        if STOPS:
            # already stopping: let the first stop's clean-up finish and say how to go on. Linux sends the parent-death
            # signal again as each thread of a dying multi-threaded parent (a sweep) lets the run go, so a run orphaned
            # by a killed sweep gets several SIGTERMs; a second KeyboardInterrupt in the clean-up lost its message
            STOPS.append(signum)
            return
        # a stop sent to the whole process group kills the loader workers too: torch's SIGCHLD handler would raise
        # their deaths anywhere in the clean-up, and the loaders' own clean-up report them; both are the stop
        # (a Python no-op, not SIG_DFL: a SIGCHLD already caught would then raise "ignored due to race condition")
        before[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        sys.unraisablehook = partial(quiet_loaders, hook)
        STOPS.append(signum)
        raise KeyboardInterrupt
    STOPS.clear()  # a new command starts unstopped
    for sig in (signal.SIGINT, signal.SIGTERM): signal.signal(sig, stop)
    try: yield
    finally:
        for sig, h in before.items(): signal.signal(sig, h if h is not None else signal.SIG_DFL)
        # after a stop the dead loaders are reported as their iterators are collected, which may be later: their
        # reports stay filtered, and every other report goes where it went before
        if not STOPS: sys.unraisablehook = hook


def quiet_loaders(hook, unraisable):
    "Pass `unraisable` to `hook` unless it is a data loader's report of the workers that a stop killed."
    o = unraisable.object  # an iterator, or the `__del__` that failed: a stop inside an iterator's __init__ leaves it
    where = (getattr(type(o), '__module__', None) or '', getattr(o, '__module__', None) or '')  # half built
    if any(w.startswith('torch.utils.data') for w in where) or issubclass(unraisable.exc_type,
                                                                         (KeyboardInterrupt, ConnectionError)):
        return
    hook(unraisable)


def stopping() -> bool: return bool(STOPS)
