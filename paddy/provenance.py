"""What every artefact carries: when it was made, with which library versions, from which commit."""
import platform, subprocess, time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=here, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError): sha = ''
    return (sha + ('-dirty' if dirty else '')) if sha else built_from()


def built_from() -> str | None:
    "The commit a wheel was built from (`paddy kaggle run` writes it in), where paddy runs outside a checkout."
    try: from ._build import COMMIT
    except ImportError: return None
    return COMMIT


def stamp() -> dict:
    return {'created': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'versions': versions(), 'git_commit': git_commit()}
