"""paddy's environment variables, read and checked in one place: a bad value is one line that names the variable."""
import os
from pathlib import Path

from .errors import PaddyError

OFF = ('0', 'off', 'false', 'no')


def cache_dir() -> Path:
    "paddy's own cache ($PADDY_CACHE, else ~/.cache/paddy): converted weights and the item cache."
    return folder('PADDY_CACHE', Path.home() / '.cache' / 'paddy')


def folder(var: str, default: Path | None = None) -> Path | None:
    "The folder `var` names (else `default`); a file there is refused, since paddy would write into it."
    raw = os.environ.get(var)
    path = Path(raw).expanduser() if raw else default
    if path is not None and path.exists() and not path.is_dir():
        raise PaddyError(f"{var}={raw}: that is a file, not a folder: point {var} at a folder"
                         + (f", or set {var}=off" if var == 'PADDY_ITEM_CACHE' else ''))
    return path


def workers() -> int:
    "Image loader processes: $PADDY_WORKERS, else fastai's own default, min(16, cores)."
    raw = os.environ.get('PADDY_WORKERS', '').strip()
    if not raw: return min(16, os.cpu_count() or 1)
    if not raw.isdigit():
        raise PaddyError(f"PADDY_WORKERS={raw}: give a whole number of image loader processes, e.g. PADDY_WORKERS=4 "
                         "(0 loads in the main process)")
    return int(raw)


def item_cache() -> Path | None:
    "Where item caches live: $PADDY_ITEM_CACHE, else <paddy's cache>/items; None when PADDY_ITEM_CACHE=off."
    raw = os.environ.get('PADDY_ITEM_CACHE', '')
    if raw.lower() in OFF and raw: return None
    return folder('PADDY_ITEM_CACHE') if raw else cache_dir() / 'items'


def data() -> Path | None:
    "The competition folder $PADDY_DATA names, if any."
    raw = os.environ.get('PADDY_DATA')
    return Path(raw).expanduser() if raw else None


def github() -> tuple[str | None, str]:
    "A GitHub token ($GITHUB_TOKEN or $GH_TOKEN) and the API's address ($PADDY_GITHUB_API: GitHub Enterprise, a test)."
    return (os.environ.get('GITHUB_TOKEN') or os.environ.get('GH_TOKEN'),
            os.environ.get('PADDY_GITHUB_API', 'https://api.github.com'))


def in_kaggle_notebook() -> bool: return bool(os.environ.get('KAGGLE_KERNEL_RUN_TYPE'))
