"""Where a Kaggle notebook finds its inputs. Kaggle has mounted a competition at /kaggle/input/<slug> and, in 2026, at
/kaggle/input/competitions/<slug> (kaggle-cli #1140 reports both), and a dataset at /kaggle/input/<slug> or
/kaggle/input/datasets/<owner>/<slug>. Standard library only, and it reads its one variable itself: `paddy kaggle run`
copies this file's source into the script it pushes, which runs before paddy is installed."""
import os
from pathlib import Path

KAGGLE_INPUT = Path('/kaggle/input')


def input_root() -> Path:
    "/kaggle/input, or $PADDY_KAGGLE_INPUT: a folder laid out like it, to rehearse a notebook on your own machine."
    return Path(os.environ.get('PADDY_KAGGLE_INPUT') or KAGGLE_INPUT)


def mounts(slug: str, root: Path | None = None) -> list[Path]:
    "The folders under `root` (default: `input_root()`) where the input named `slug` is mounted, oldest layout first."
    root = input_root() if root is None else Path(root)
    found = [root / slug, root / 'competitions' / slug, *sorted(root.glob(f'datasets/*/{slug}'))]
    return [p for p in found if p.is_dir()]
