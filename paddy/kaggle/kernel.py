"""A Kaggle script kernel in a folder: `kernel-metadata.json` (competition, GPU, Internet, the paddy dataset) and one
script."""
import inspect, json
from pathlib import Path

from ..data import COMPETITION
from ..errors import PaddyError
from ..data import mounts
from . import notebook
from .client import quietly

CODE_FILE = 'paddy_kaggle.py'
ACCELERATOR = 'NvidiaTeslaT4'  # Kaggle's default GPU: T4s, two on the sessions seen (kaggle-cli PR #1198)
# the GPUs kaggle-cli's docs/kernels.md lists as available in Sep 2026; some only for some competitions or accounts
GPUS = ('NvidiaTeslaT4', 'NvidiaTeslaT4Highmem', 'NvidiaL4', 'NvidiaL4X1', 'NvidiaTeslaA100', 'NvidiaH100',
        'NvidiaRtxPro6000')
RETIRED = ('nvidiateslap100', 'tpuv38', 'tpu1vmv38', 'tpuv232', 'tpuv2256')  # kaggle 2.2.5: _RETIRED_ACCELERATORS


def slugify(title: str) -> str:
    "The slug Kaggle derives from a title (the client warns when the two differ)."
    with quietly(): from kaggle.api.kaggle_api_extended import slugify
    return slugify(title)


def default_title(exps: list[str]) -> str:
    "'paddy ' and the experiments, within Kaggle's 50 characters: pushing the same ones again makes a new version."
    title = f"paddy {' '.join(exps)}"
    return title if len(title) <= 50 else f"paddy {exps[0][:30]} and {len(exps) - 1} more"


def check_title(title: str) -> str:
    if not 5 <= len(title) <= 50 or not slugify(title):
        raise PaddyError(f"--title '{title}': Kaggle wants 5 to 50 characters, with letters or digits")
    return title


def check_accelerator(name: str) -> str:
    """`name` when it is one of today's GPUs. Kaggle takes an unknown or retired name without a word and runs the
    session on a P100 (kaggle 2.2.5's _RETIRED_ACCELERATORS; kaggle-cli #1151), for which today's torch has no
    kernels, so paddy refuses it before any call."""
    if name not in GPUS:
        why = 'is retired' if name.lower() in RETIRED else 'is not a GPU' if name.startswith('Tpu') else 'is unknown'
        raise PaddyError(f"--accelerator {name} {why}: give one of {', '.join(GPUS)} ({ACCELERATOR} by default)")
    return name


def metadata(owner: str, title: str, dataset: str, accelerator: str = ACCELERATOR, comp: str = COMPETITION) -> dict:
    return dict(id=f'{owner}/{slugify(title)}', title=title, code_file=CODE_FILE, language='python',
                kernel_type='script',
                # Internet: pip fills what the image lacks
                is_private=True, enable_gpu=True, enable_tpu=False, enable_internet=True,
                machine_shape=accelerator, dataset_sources=[dataset], competition_sources=[comp], kernel_sources=[],
                model_sources=[])


def script(bundle: str, exps: list[str], args: list[str], kernel: str, comp: str = COMPETITION,
           dataset: str = 'paddy-lib', sweep: str = '', hours: float = 12.0, playbook: str = '', run: str = '') -> str:
    """The finder's and notebook.py's source and the call that runs them: the kernel's whole code, readable on its
    page. It runs `paddy sweep`, or with `playbook` `paddy playbook` as run `run`."""
    call = dict(bundle=bundle, competition=comp, experiments=exps, args=args, kernel=kernel, dataset=dataset,
                sweep=sweep, hours=hours, **(dict(playbook=playbook, run=run) if playbook else {}))
    what = f'paddy playbook {playbook} --name {run}' if playbook else f'paddy sweep {" ".join(exps + args)}'
    return (f'# Pushed by `paddy kaggle run`: {kernel} runs `{what}` on {comp}.\n'
            + inspect.getsource(mounts) + '\n\n' + inspect.getsource(notebook)
            + f"\n\nif __name__ == '__main__':\n    main(**{call!r})\n")


def write(folder: Path, meta: dict, text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / 'kernel-metadata.json').write_text(json.dumps(meta, indent=1))
    (folder / CODE_FILE).write_text(text)
    return folder
