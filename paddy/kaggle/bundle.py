"""Paddy as a private Kaggle dataset, the way fastkaggle ships libraries: paddy's wheel and the experiments a kernel
runs, versioned only when their contents change."""
import hashlib, json, shutil, subprocess, sys, tempfile, time
from pathlib import Path

from ..errors import PaddyError
from ..files import sha256
from ..provenance import git_commit, stamp
from ..spec import Experiment, assignments
from ..train.weights import PACKAGED
from .client import kaggle_errors

SLUG = 'paddy-lib'
TITLE = 'paddy, for paddy kaggle run'  # Kaggle wants 6 to 50 characters
ROOT = Path(__file__).resolve().parents[2]  # the checkout this paddy runs from


def manifest_name(digest: str) -> str:
    "The manifest's file name carries the contents' hash, so a file listing tells whether a version holds them."
    return f'paddy-{digest}.json'


def source_files(root: Path = ROOT) -> list[Path]:
    """What goes into the wheel and so into the hash; README.md is in the wheel too, but editing it changes nothing that
    runs."""
    if not (root / 'pyproject.toml').is_file():
        raise PaddyError(f"paddy kaggle run builds paddy's wheel from its source, and {root} has no pyproject.toml: "
                         "run paddy from a clone of its repository (pip install -e .)")
    return sorted(p for p in (root / 'paddy').rglob('*.py') if '__pycache__' not in p.parts) + [root / 'pyproject.toml']


def experiment_text(exp: Experiment, sets=()) -> str:
    "`exp` as one flat file of assignments: its bases and `--set` overrides applied, so it needs nothing beside it."
    head = (f'"""{exp.name}, as `paddy kaggle run` resolved it' + (f" with --set {' '.join(sets)}" if sets else '')
            + '."""\n')
    return head + assignments(exp)


def check_portable(exp: Experiment):
    "Refuse what only this machine has: a weights file here is not in the notebook."
    if isinstance(exp.pretrained, str) and exp.pretrained not in PACKAGED:
        raise PaddyError(f"{exp.name}: pretrained='{exp.pretrained}' is a file on this machine, which a Kaggle "
                         "notebook can't read: "
                         f"use pretrained=True (the hub) or one of {', '.join(PACKAGED)} with --set pretrained=…")


def digest(files: list[Path], exps: dict[str, str], extra: dict[str, bytes] | None = None,
           root: Path = ROOT) -> str:
    "12 hex digits of sha256 over paddy's sources, the experiment files and any `extra` files, by name and content."
    h = hashlib.sha256()
    for p in files: h.update(f'{p.relative_to(root).as_posix()}\0'.encode() + p.read_bytes() + b'\0')
    for name, text in sorted(exps.items()): h.update(f'experiments/{name}.py\0{text}\0'.encode())
    for name, data in sorted((extra or {}).items()): h.update(f'{name}\0'.encode() + data + b'\0')
    return h.hexdigest()[:12]


def wheel(dest: Path, files: list[Path], root: Path = ROOT) -> Path:
    """Build paddy's wheel into `dest` from a copy of exactly the hashed files, plus the commit they came from, which
    runs record where there is no git checkout."""
    with tempfile.TemporaryDirectory(prefix='paddy-wheel-') as tmp:
        src = Path(tmp)
        for p in files + [root / 'README.md']:
            (src / p.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src / p.relative_to(root))
        (src / 'paddy' / '_build.py').write_text('"""Written by paddy kaggle run into the wheel it built."""\nCOMMIT '
                                                 f'= {git_commit()!r}\n')
        r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                            '--no-cache-dir', '-q', '-w', str(dest), str(src)],
                           capture_output=True, text=True)
        if r.returncode:
            raise PaddyError(f"building paddy's wheel failed: {(r.stderr or r.stdout).strip().splitlines()[-1]}")
    return next(dest.glob('paddy-*.whl'))


def build(folder: Path, owner: str, exps: list[Experiment], sets=(), finished: dict[str, str] | None = None,
          extra: dict[str, bytes] | None = None, **info) -> dict:
    """Write the dataset's folder: the wheel, one flat file per experiment, the manifest (with `info`) and
    `dataset-metadata.json`; `finished`, the .json of runs this sweep already made (run → text), so that the kernel
    skips them; and `extra` files (name → contents), such as a playbook and its state."""
    texts, finished, extra = {e.name: experiment_text(e, sets) for e in exps}, finished or {}, extra or {}
    files = source_files()
    h = digest(files, {**texts, **{f'finished/{run}': text for run, text in finished.items()}}, extra)
    folder.mkdir(parents=True)
    whl = wheel(folder, files)
    for name, text in texts.items(): (folder / f'{name}.py').write_text(text)
    for run, text in finished.items(): (folder / f'finished-{run}.json').write_text(text)
    for name, data in extra.items(): (folder / name).write_bytes(data)
    manifest = dict(bundle=h, wheel=whl.name, experiments=list(texts), set=list(sets), finished=sorted(finished),
                    **info, files={p.name: sha256(p) for p in sorted(folder.iterdir())}, **stamp())
    (folder / manifest_name(h)).write_text(json.dumps(manifest, indent=1))
    (folder / 'dataset-metadata.json').write_text(json.dumps(dict(
        id=f'{owner}/{SLUG}', title=TITLE, licenses=[dict(name='other')],
        description="paddy's wheel and the experiment files its Kaggle notebooks run, pushed by `paddy kaggle run`. "
                    "paddy is Apache-2.0."), indent=1))
    return manifest


def _files(kaggle_api, ref: str) -> list[str]:
    r = kaggle_api.dataset_list_files(ref, page_size=200)
    return [f.name for f in (r.dataset_files or [])]


WAIT_S, POLL_S = 600, 5  # how long a new version may take to become the current one, and how often to ask


def current(kaggle_api, ref: str, bundle: str) -> bool:
    """Whether the version of `ref` a kernel would mount now holds `bundle`. READY can still describe the version
    before a new one, so only the manifest's name among the current version's files says so."""
    status = kaggle_api.dataset_status(ref)
    if status == 'failed': raise PaddyError(f"Kaggle failed to process dataset {ref}: run `paddy kaggle run` again")
    return status == 'ready' and manifest_name(bundle) in _files(kaggle_api, ref)


def publish(kaggle_api, folder: Path, owner: str, bundle: str) -> str:
    """Make the current version of `owner/paddy-lib` hold `bundle`: create the dataset, or version it, or leave it when
    it already does; then wait until that version is the current one, since a kernel pushed before mounts the old."""
    import requests
    ref = f'{owner}/{SLUG}'
    with kaggle_errors(thing=f'dataset {ref}'):
        try: kaggle_api.dataset_status(ref); exists = True
        except requests.HTTPError as e:
            if getattr(e.response, 'status_code', None) != 404: raise
            exists = False
        if exists and manifest_name(bundle) in _files(kaggle_api, ref): return f'{ref} already holds paddy {bundle}'
        if exists: r = kaggle_api.dataset_create_version(str(folder), version_notes=f'paddy {bundle}', quiet=True)
        else: r = kaggle_api.dataset_create_new(str(folder), public=False, quiet=True)
        if getattr(r, 'error', None): raise PaddyError(f"Kaggle refused the dataset {ref}: {r.error}")
        t0 = time.time()
        while not current(kaggle_api, ref, bundle):
            if time.time() - t0 > WAIT_S:
                raise PaddyError(f"Kaggle has not made paddy {bundle} the current version of {ref} after "
                                 f"{time.time() - t0:.0f} s: run `paddy kaggle run` again later")
            print(f'waiting for Kaggle to make paddy {bundle} the current version of {ref}…', flush=True)
            time.sleep(POLL_S)
    return f"{'versioned' if exists else 'created'} {ref} with paddy {bundle}"
