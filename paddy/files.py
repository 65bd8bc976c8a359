"""Files written once and whole: hashes, run names, temporary-then-rename writes, JSON and append-only CSV logs."""
import contextlib, errno, hashlib, json, os, secrets, shutil
from pathlib import Path

from .errors import PaddyError


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''): h.update(chunk)
    return h.hexdigest()


def new_run(name: str, *dirs: Path) -> str:
    "`name` plus a short random id that names no file yet in `dirs`."
    while True:
        run = f'{name}-{secrets.token_hex(3)}'
        if not any(d.exists() and any(d.glob(f'{run}.*')) for d in dirs): return run


def is_run_name(run: str) -> bool:
    "Whether `run` can only name a file in the folder it is looked up in: no path, no `.` or `..`."
    return bool(run) and run not in ('.', '..') and '/' not in run and os.sep not in run


def never_overwrite(*paths: Path, hint: str = 'choose another name'):
    "Raise when any of `paths` exists: artefacts are written once, so check before the work that makes them."
    taken = [p for p in paths if Path(p).exists()]
    if taken: raise PaddyError(f"{taken[0]} exists and is never overwritten: {hint}")


def _tmp(path: Path) -> Path: return path.with_name(f'.{path.name}.{os.getpid()}.tmp')


@contextlib.contextmanager
def replaced(path: Path):
    "Yield a temporary path beside `path` to write, then rename it over `path`: a stop mid-write leaves the old whole."
    tmp = _tmp(Path(path))
    try:
        yield tmp
        os.replace(tmp, path)
    finally: tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def written_once(path: Path, hint: str = 'choose another name'):
    """Yield a temporary path beside `path` to write; then link it to `path` in one step, which fails if `path` exists:
    a reader never sees half a file, a stop or crash leaves none, and nothing existing is ever replaced."""
    path = Path(path)
    never_overwrite(path, hint=hint)  # before the work, not after it
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    try:
        yield tmp
        try: os.link(tmp, path)
        except FileExistsError: never_overwrite(path, hint=hint)
        except OSError:  # a filesystem without hard links: check, then rename
            never_overwrite(path, hint=hint)
            os.rename(tmp, path)
    finally: tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_once(dest: Path, hint: str = 'choose another name'):
    """Yield a temporary folder beside `dest` to fill; then rename it to `dest`, which must not exist by then: a stop
    or failure leaves no half folder under the real name, and nothing existing is replaced."""
    dest = Path(dest)
    never_overwrite(dest, hint=hint)  # before the work, not after it
    tmp = dest.with_name(f'.{dest.name}.{os.getpid()}.tmp')
    shutil.rmtree(tmp, ignore_errors=True)  # this process's own, left by an earlier attempt
    tmp.mkdir(parents=True)
    try:
        yield tmp
        never_overwrite(dest, hint=hint)
        os.rename(tmp, dest)
    finally: shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def open_new(path: Path, mode: str = 'x', hint: str = 'choose another name'):
    "Open a file that appears at `path`, whole, when closed, and only if nothing is there by then (see `written_once`)."
    with written_once(path, hint) as tmp, open(tmp, mode.replace('x', 'w')) as f: yield f


def write_json(path: Path, obj: dict, replace: bool = False):
    "Write `obj` to `path` whole, refusing to overwrite unless `replace`."
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced(path) if replace else written_once(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=str))


class Damaged(PaddyError):
    "A file paddy wrote that no longer reads back: truncated, edited, or not what its name says."


def damaged(path: Path, e: Exception, fix: str) -> Damaged:
    why = str(e).splitlines()[0][:80] if str(e) else 'unreadable'
    return Damaged(f"{path} is damaged ({type(e).__name__}: {why}): {fix}")


@contextlib.contextmanager
def torch_write(path: Path):
    """torch's zip writer reports a failed write (a full disk, a file size limit) as a RuntimeError: raise it as the
    OSError it is, naming `path`."""
    try: yield
    except RuntimeError as e:
        if 'write' not in str(e) and 'unexpected pos' not in str(e): raise
        raise OSError(errno.EIO, f"writing failed ({str(e).splitlines()[0][:60]})", str(path)) from None


def read_json(path: Path, fix: str = 'move it aside, then make it again') -> dict:
    "`path`'s JSON object; a damaged file is one line that names it and `fix`."
    try: obj = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as e: raise damaged(path, e, fix) from None
    if not isinstance(obj, dict): raise damaged(path, TypeError(f'a JSON {type(obj).__name__}, not an object'), fix)
    return obj


def append_row(log: Path, columns, row: dict):
    "Append `row` to the CSV `log`, with a header when the file is new: a log is only ever appended to."
    import csv
    new = not Path(log).is_file()
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, 'a', newline='') as f:
        w = csv.DictWriter(f, columns)
        if new: w.writeheader()
        w.writerow(row)
