"""What every artefact carries: library versions, the git commit, a unique run name, write-once files."""
import json, platform, secrets, subprocess, time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .errors import PaddyError

LIBS = ('paddy', 'torch', 'torchvision', 'fastai', 'timm', 'numpy', 'pandas')


def versions() -> dict:
    def v(name):
        try: return version(name)
        except PackageNotFoundError: return None
    return {'python': platform.python_version(), **{n: v(n) for n in LIBS}}


def git_commit() -> str | None:
    "The commit of the paddy checkout, with `-dirty` when it has uncommitted changes."
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=here, capture_output=True, text=True, timeout=10)
        sha = r.stdout.strip() if r.returncode == 0 else ''
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=here, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError): return None
    return (sha + ('-dirty' if dirty else '')) if sha else None


def stamp() -> dict:
    return {'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'versions': versions(), 'git_commit': git_commit()}


def new_run(name: str, *dirs: Path) -> str:
    "`name` plus a short random id that names no file yet in `dirs`."
    while True:
        run = f'{name}-{secrets.token_hex(3)}'
        if not any(d.exists() and any(d.glob(f'{run}.*')) for d in dirs): return run


def never_overwrite(*paths: Path, hint: str = 'choose another name'):
    "Raise when any of `paths` exists: artefacts are written once, so check before the work that makes them."
    taken = [p for p in paths if Path(p).exists()]
    if taken: raise PaddyError(f"{taken[0]} exists and is never overwritten: {hint}")


def open_new(path: Path, mode: str = 'x', hint: str = 'choose another name'):
    "Open `path` for writing only if nothing is there yet (atomically, unlike a check then an open)."
    path.parent.mkdir(parents=True, exist_ok=True)
    try: return open(path, mode)
    except FileExistsError: never_overwrite(path, hint=hint)


def write_json(path: Path, obj: dict, replace: bool = False):
    "Write `obj` to `path`, refusing to overwrite unless `replace`."
    path.parent.mkdir(parents=True, exist_ok=True)
    with (open(path, 'w') if replace else open_new(path)) as f: json.dump(obj, f, indent=1, default=str)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
