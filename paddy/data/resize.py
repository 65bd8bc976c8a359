"""A smaller copy of a competition folder, the longest side at most `max_size`, aspect kept: Road to the Top's 256-px
copy."""
import shutil, sys
from pathlib import Path

from PIL import Image

from ..errors import PaddyError
from ..files import read_json, replaced, write_json
from ..provenance import stamp as prov
from .folder import find_data
from .loaders import num_workers
from .pool import pmap

STAMP = 'paddy-resize.json'


def shrink(src: Path, dest: Path, max_size: int) -> bool:
    """Write `src` to `dest` with its longest side `max_size` (a plain copy when already that small), through a
    temporary name, so a stopped copy leaves no half image under its real name. True when it was resized."""
    try: im = Image.open(src)
    except (OSError, Image.DecompressionBombError) as e:
        raise PaddyError(f"{src}: not an image ({type(e).__name__}): remove it, or replace it "
                         "(`paddy check` lists every such file)") from None
    with replaced(dest) as tmp, im:
        w, h = im.size
        r = max_size / max(w, h)
        if r >= 1:
            shutil.copyfile(src, tmp)
        else:
            size = (max(1, round(w * r)), max(1, round(h * r)))
            im.draft(None, size)  # a JPEG decodes straight at 1/2, 1/4 or 1/8 scale when that is still big enough
            out = im.convert('RGB') if im.mode not in ('RGB', 'L') else im
            out.resize(size, Image.BILINEAR).save(tmp, format=im.format or 'JPEG', quality=95)
    return r < 1


def _job(args): return shrink(*args)


def resize(src: Path, dest: Path | None, max_size: int, workers: int = 0) -> Path:
    """Copy competition folder `src` to `dest` (default: beside it, `<name>-<max_size>`) with every image shrunk; files
    already there are kept, so a stopped copy resumes. The CSVs and `paddy-resize.json` come last: until then the copy
    lacks the competition's layout, and no run can take it for whole. `paddy-resize.json` says where it came from."""
    if max_size < 1: raise PaddyError(f"--max-size {max_size}: give the longest side in pixels, e.g. --max-size 256")
    dest = dest or src.with_name(f'{src.name}-{max_size}')
    if dest.resolve() == src.resolve() or src.resolve() in dest.resolve().parents:
        raise PaddyError(f"--dest {dest} is inside the data it copies ({src}): choose a folder outside it")
    stamp = dest / STAMP
    if stamp.exists():
        prev = read_json(stamp, f"delete {dest} and run `paddy resize` again, or choose another --dest")
        if prev.get('max_size') != max_size or prev.get('source') != str(src.resolve()):
            raise PaddyError(f"{dest} is a copy of {prev.get('source')} at --max-size {prev.get('max_size')}: choose "
                             "another --dest")
    elif dest.exists() and any(dest.iterdir()):
        raise PaddyError(f"{dest} exists and is not a copy that paddy resize made: choose another --dest")
    meta = dict(source=str(src.resolve()), max_size=max_size, complete=False)
    files = sorted(p.relative_to(src) for d in ('train_images', 'test_images') for p in (src / d).rglob('*')
                   if p.is_file() and not p.name.startswith('.'))
    odd = [f for f in files if f.suffix.lower() not in Image.registered_extensions()]
    if odd:  # Thumbs.db, desktop.ini: refused before anything is written, not half-way through the copy
        raise PaddyError(f"{src / odd[0]} is not an image" + (f" (nor are {len(odd) - 1} more)" if len(odd) > 1 else '')
                         + ": remove it (`paddy check` lists every such file)")
    dest.mkdir(parents=True, exist_ok=True)
    write_json(stamp, meta, replace=True)  # first, so a stopped copy is known as ours and resumes
    for t in dest.rglob('.*.tmp') if dest.exists() else (): t.unlink()  # a stopped run's unfinished images
    todo = [f for f in files if not (dest / f).exists()]
    for d in {(dest / f).parent for f in todo}: d.mkdir(parents=True, exist_ok=True)
    print(f"{src} → {dest}: {len(files)} images, {len(files) - len(todo)} already done", file=sys.stderr)
    jobs = [(src / f, dest / f, max_size) for f in todo]
    resized = sum(pmap(_job, jobs, workers, 'resize', chunksize=16, serial_below=65, total=len(files),
                       initial=len(files) - len(todo), leave=True))
    for name in sorted({p.name for p in src.glob('*.csv')} | {'train.csv', 'sample_submission.csv'}):
        if (src / name).exists(): shutil.copyfile(src / name, dest / name)
    meta.update(complete=True, images=len(files), resized_now=resized, done_before=len(files) - len(todo), **prov())
    write_json(stamp, meta, replace=True)
    return dest


def copy(data, dest: Path | None, max_size: int) -> str:
    "`paddy resize`: a smaller copy of the competition folder in use, and how to train on it."
    out = resize(find_data(data), dest, max_size, workers=num_workers())
    return f'{out}: ready; train on it with --data {out}'
