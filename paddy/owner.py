"""One owner at a time. A process that trains a run, runs a sweep or a playbook holds an flock on a `lock` file in its
folder, and writes there who it is; a second process is refused in one line that names the first. The kernel drops an
flock when its holder dies, by any signal, SIGKILL included, so a crash never leaves a lock that blocks."""
import contextlib, fcntl, json, os, signal, socket, sys, time
from pathlib import Path

from .errors import PaddyError


class Taken(PaddyError):
    "Another live process holds the lock."


def who(info: dict) -> str:
    "A lock's holder in words: its process id (and host, when another), what it runs and since when."
    if not info.get('pid'): return 'another process'
    host = f" on {info['host']}" if info.get('host') not in (None, socket.gethostname()) else ''
    return f"process {info['pid']}{host} (`{info.get('command', '?')}`, since {info.get('since', '?')})"


def _read(fd: int) -> dict:
    try: return json.loads(os.pread(fd, 4096, 0) or b'{}')
    except (OSError, ValueError): return {}  # caught as its holder writes it


def holder(lock: Path) -> dict | None:
    "What the live holder of `lock` wrote about itself (pid, host, command, since), or None when nobody holds it."
    try: fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError: return None
    try:
        try: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError: return _read(fd)
        return None
    finally: os.close(fd)  # drops the shared lock too


def _take(lock: Path) -> int | None:
    """An fd of `lock` holding its flock, or None when another process holds it. A lock file removed by the holder
    that let it go is not the one on disk any more: take the new one instead."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try: same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError: same = False
        if same: return fd
        os.close(fd)


@contextlib.contextmanager
def owned(lock: Path, refuse):
    """Hold `lock` for the block; when a live process holds it, raise `Taken(refuse(holder))`, `holder` in words. A
    prober's brief shared lock (`holder`) may be in the way for a moment, so a taken lock is tried for a second."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        fd = _take(lock)
        if fd is not None: break
        info = holder(lock)
        if info: raise Taken(refuse(who(info)))
        time.sleep(0.1)
    else: raise Taken(refuse('another process'))
    me = dict(pid=os.getpid(), host=socket.gethostname(), command=' '.join(['paddy', *sys.argv[1:]]),
              since=time.strftime('%Y-%m-%d %H:%M:%S'))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    try: yield
    finally:
        # removed while still held, so no process can take the file that is going away
        with contextlib.suppress(FileNotFoundError): os.unlink(lock)
        os.close(fd)


@contextlib.contextmanager
def turn(lock: Path):
    """Hold `lock` for the block, waiting while another process holds it: the way processes that would make the same
    thing (an item cache) take turns, where `owned` refuses the second."""
    with open(lock, 'a') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def if_free(lock: Path):
    "Yield True, holding `lock`, when no process holds it; else False at once, holding nothing."
    with open(lock, 'a') as f:
        try: fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


PARENT = 'PADDY_DIE_WITH'  # the pid of the process whose death stops this one


def die_with_parent():
    """Stop with SIGTERM when the process that started this one dies, by any signal (Linux's PR_SET_PDEATHSIG), so a
    run never trains on as an orphan of a killed sweep; SIGTERM saves its last epoch, as any stop does. Started by a
    parent that is already gone, do nothing."""
    parent = os.environ.pop(PARENT, None)  # for this process alone, not for those it starts
    if not parent or not sys.platform.startswith('linux'): return
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if str(os.getppid()) != parent:
        raise PaddyError(f'process {parent}, which started this one, has ended: nothing was trained; start it again')
