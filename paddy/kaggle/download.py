"""Get the competition folder: Kaggle's own mount inside a notebook, else download and unzip it once."""
import os, shutil, time, zipfile
from importlib.metadata import version
from pathlib import Path

from ..data import COMPETITION, LAYOUT, has_layout
from ..data.mounts import input_root, mounts
from ..environ import in_kaggle_notebook
from ..errors import PaddyError
from ..files import folder_once, sha256, write_json
from ..workspace import here
from .client import download_zip, endpoint


def unzip(archive: Path, dest: Path):
    "Extract with a progress bar; zipfile drops `..` and absolute prefixes, so nothing lands outside `dest`."
    from tqdm.auto import tqdm
    try:
        with zipfile.ZipFile(archive) as z:
            for m in tqdm(z.infolist(), desc=f'unzipping {archive.name}', unit='file'): z.extract(m, dest)
    except zipfile.BadZipFile:
        raise PaddyError(f"{archive} is not a whole zip: delete it and run `paddy download` again") from None


def download(comp: str = COMPETITION, dest: Path | None = None) -> Path:
    "The folder holding `comp`'s files: where a notebook mounts it, else `dest/<comp>`, downloaded if absent."
    if in_kaggle_notebook():
        found = [p for p in mounts(comp) if has_layout(p)]
        if not found:
            raise PaddyError(f"inside a Kaggle notebook, but neither {input_root() / comp} nor "
                             f"{input_root() / 'competitions' / comp} holds the competition files: add them with Add "
                             f"Input → Competitions → {comp}")
        path = found[0]
        print(f'inside a Kaggle notebook: using {path}, nothing to download')
        return path
    dest = here().data if dest is None else Path(dest)
    out = dest / comp
    if has_layout(out):
        print(f'{out} already holds the competition files: nothing to download')
        return out
    if out.exists() and any(out.iterdir()):
        raise PaddyError(f"{out} exists but lacks some of {', '.join(LAYOUT)}: move it aside (nothing is overwritten), "
                         "then run this again")
    # hidden until whole, so a stop leaves no half folder
    part = dest / f'.{comp}.zip-part'
    part.mkdir(parents=True, exist_ok=True)
    try: archive = Path(download_zip(comp, part))
    finally:
        if not any(part.iterdir()): part.rmdir()  # a partial zip stays: the client resumes it next time
    if out.exists(): out.rmdir()  # empty, checked above
    with folder_once(out, hint='move it aside, then run this again') as staging:
        unzip(archive, staging)
        if not has_layout(staging):
            raise PaddyError(f"the zip from Kaggle lacks some of {', '.join(LAYOUT)} (kept at {archive}): is '{comp}' "
                             "the Paddy Doctor competition?")
        write_json(staging / 'paddy-download.json',
                   dict(competition=comp, endpoint=endpoint(), zip=archive.name, bytes=archive.stat().st_size,
                        sha256=sha256(archive), downloaded=time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                        kaggle=version('kaggle')))
    shutil.rmtree(part)
    print(f'{out}: {len(os.listdir(out / "test_images"))} test images, '
          f'{sum(1 for _ in (out / "train_images").rglob("*.jpg"))} training images')
    return out
