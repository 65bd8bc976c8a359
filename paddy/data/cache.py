"""The fast item pipeline: decode each photo at reduced scale when the target allows, item-transform it once, and keep
the uint8 result in an on-disk cache that every later epoch, and every later run with the same item transform, reads."""
import contextlib, hashlib, json, os, shutil, sys, time, warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..compat import plain_image
from ..errors import PaddyError
from ..files import Damaged, damaged
from ..owner import if_free, turn
from .. import environ
from ..provenance import stamp
from ..tables import table_text
from .pool import pmap
from .sizes import headers

FORMAT = 1  # bump when what is stored changes, so an old cache is never read as a new one


@dataclass(frozen=True)
class Item:
    "An item transform: `method` (squish | pad | crop) to `size` (rows, cols), as fastai's `Resize` with zero padding."
    method: str
    size: tuple[int, int]

    def content(self, w: int, h: int) -> tuple[int, int]:
        "The (w, h) that a `w`×`h` photo's own pixels take once transformed: the least the decoder must deliver."
        rows, cols = self.size
        if self.method == 'squish': return cols, rows
        r = (min if self.method == 'pad' else max)(cols / w, rows / h)
        return max(1, round(w * r)), max(1, round(h * r))


@lru_cache
def _resize(item: Item):
    from fastai.vision.augment import PadMode, Resize
    return Resize(item.size, method=item.method, pad_mode=PadMode.Zeros)


def decode(fn, item: Item) -> np.ndarray:
    """`fn` decoded and item-transformed, as a contiguous (3, rows, cols) uint8 array. squish and pad equal fastai's
    `Resize` in validation (pad centred); crop keeps the whole photo scaled to cover `item.size`, for `CropTensor` to
    cut."""
    with Image.open(fn) as im:
        w, h = im.size
        size = item.content(w, h)
        if im.format == 'JPEG' and size == (w, h) and (item.method != 'pad' or item.size == (h, w)):
            a = _jpeg(fn)  # nothing to resize: torchvision's libjpeg-turbo, the same pixels as PIL's at half the cost
            if a is not None: return a
        # a JPEG decodes at 1/2, 1/4 or 1/8 scale in the DCT, never below the target: a fraction of the work
        im.draft(None, size)
        im.load()
        # a plain Image, as fastai's `load_image` makes: its transforms keep the type they are given
        im = plain_image(im)
    if im.mode != 'RGB': im = im.convert('RGB')  # grayscale, CMYK, RGBA, palette; an RGB convert would only copy
    if item.method == 'pad': im = _resize(item)(im, split_idx=1)
    # squish and crop are one bilinear resize (fastai's squish first crops to the whole photo, which changes nothing)
    elif im.size != size: im = im.resize(size, Image.BILINEAR)
    # channels first once here, so every later epoch's collate stacks contiguous images
    return np.ascontiguousarray(np.asarray(im).transpose(2, 0, 1))


def _jpeg(fn) -> np.ndarray | None:
    """torchvision's decode, which warns on every call since 0.29 that it will move to torchcodec; where it is gone, PIL
    decodes."""
    try: from torchvision.io import ImageReadMode, decode_jpeg, read_file
    except ImportError: return None
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        try: return np.ascontiguousarray(decode_jpeg(read_file(str(fn)), mode=ImageReadMode.RGB).numpy())
        except RuntimeError: return None  # a JPEG that libjpeg-turbo's torchvision build refuses: PIL tries it next


def root() -> Path | None:
    "Where caches live: $PADDY_ITEM_CACHE, else <paddy's cache>/items; None when PADDY_ITEM_CACHE=off."
    return environ.item_cache()


def key(files, item: Item) -> str:
    "A name for the cache of `files` under `item`: it changes when any file's path, size or modification time does."
    h = hashlib.sha256(json.dumps([FORMAT, item.method, list(item.size), Image.__version__]).encode())
    for f in files:
        st = os.stat(f)
        h.update(f'{os.path.abspath(f)}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
    return h.hexdigest()[:16]


class Cache:
    "The stored images of one cache folder, memory-mapped; `get` answers None for a file it does not hold."
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        try:
            self.meta = json.loads((self.folder / 'meta.json').read_text())
            self.index = {f: i for i, f in enumerate(self.meta['files'])}
            self.spans = np.load(self.folder / 'spans.npy')  # per file: offset, channels, rows, cols
            self.pixels = np.memmap(self.folder / 'pixels.u8', np.uint8, 'r') if self.meta['bytes'] else None
            if self.spans.shape != (len(self.index), 4) or self.meta['bytes'] != (0 if self.pixels is None
                                                                                  else self.pixels.size):
                raise ValueError('its parts disagree in size')
        except (ValueError, KeyError, TypeError, EOFError) as e:
            raise damaged(self.folder, e, "paddy builds it again when next needed; `paddy cache --clear` removes it")

    def get(self, fn) -> np.ndarray | None:
        i = self.index.get(str(fn))
        if i is None: return None
        o, c, h, w = self.spans[i]
        return np.array(self.pixels[o:o + c * h * w]).reshape(c, h, w)

    def __len__(self): return len(self.index)

    # pickled (an exported Learner, spawned loader workers) as its folder alone; where that is gone, it holds nothing
    def __getstate__(self): return {'folder': str(self.folder)}
    def __setstate__(self, state):
        try: self.__init__(state['folder'])
        except (OSError, Damaged): self.folder, self.meta, self.index = Path(state['folder']), {}, {}


def gb(n: int) -> str: return f'{n / 1e9:.1f} GB' if n >= 1e8 else f'{n / 1e6:.1f} MB'


def shapes(files, item: Item, workers: int = 0) -> np.ndarray:
    "(3, rows, cols) of each file once transformed: fixed for squish and pad, from each file's header for crop."
    if item.method != 'crop': return np.tile(np.array([3, *item.size], np.int64), (len(files), 1))
    return np.array([(3, *item.content(w, h)[::-1]) for w, h in headers(files, workers, desc='item cache: sizes')],
                    np.int64)


_fd = None


def _open(path: str):
    global _fd
    _fd = os.open(path, os.O_WRONLY)


def _close():
    global _fd
    if _fd is not None: os.close(_fd)
    _fd = None


def _put(job):
    "Decode one file and write it at its place in the pixel file: the workers write, so no image crosses a pipe."
    fn, item, offset, shape = job
    a = decode(fn, item)
    if a.shape != tuple(shape):
        raise PaddyError(f"{fn} decoded to {a.shape}, not {tuple(shape)}: report this as a paddy bug")
    if os.pwrite(_fd, a.data, offset) != a.nbytes:
        raise OSError(f"short write to the item cache at {fn}: is the disk full?")


def _write(files, item: Item, folder: Path, shape: np.ndarray, workers: int, data: str | None):
    "Decode `files` into a temporary folder beside `folder`, then rename it into place: readers never see half a cache."
    tmp = folder.with_name(f'{folder.name}.tmp-{os.getpid()}')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        sizes = shape.prod(1)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        with open(tmp / 'pixels.u8', 'wb') as f: f.truncate(int(sizes.sum()))
        jobs = [(f, item, int(o), tuple(s)) for f, o, s in zip(files, offsets, shape)]
        try: pmap(_put, jobs, workers, 'item cache', chunksize=16, serial_below=2, initializer=_open,
                  initargs=(str(tmp / 'pixels.u8'),))
        finally: _close()  # this process's own descriptor, where it wrote itself
        np.save(tmp / 'spans.npy', np.column_stack([offsets, shape]))
        meta = dict(format=FORMAT, item=dict(method=item.method, size=list(item.size)), data=data, n=len(files),
                    bytes=int(sizes.sum()),
                    build_s=round(time.perf_counter() - t0, 1), files=[str(f) for f in files], **stamp())
        (tmp / 'meta.json').write_text(json.dumps(meta))  # last: a folder with meta.json is whole
        try: os.rename(tmp, folder)
        except OSError:  # a build that `paddy cache --clear` raced with its lock got there first: keep that one
            if not (folder / 'meta.json').exists(): raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _prune(folder: Path, meta: dict):
    "Remove caches of the same data folder and item transform made from older contents: they can never be read again."
    for m in folder.parent.glob('*/meta.json'):
        if m.parent == folder: continue
        try: old = json.loads(m.read_text())
        except (OSError, ValueError): continue
        if old.get('data') == meta['data'] and old.get('item') == meta['item']:
            shutil.rmtree(m.parent, ignore_errors=True)
            print(f"item cache: removed {m.parent} ({gb(old.get('bytes', 0))}), made before the images changed",
                  file=sys.stderr)


def build(files, item: Item, where: Path, workers: int = 0, data: str | None = None) -> Cache:
    """The cache of `files` under `item` in `where`, built once; runs started together wait for one writer, then share
    it."""
    files = [str(f) for f in files]
    k = key(files, item)
    folder = where / k
    built = False
    for tmp, n in reap(where):
        print(f"item cache: removed {tmp} ({gb(n)}), left by a build whose process was killed", file=sys.stderr)
    c = whole(folder)
    if c is None:
        where.mkdir(parents=True, exist_ok=True)
        shape = shapes(files, item, workers)
        need, free = int(shape.prod(1).sum()), shutil.disk_usage(where).free
        if need > free:
            raise PaddyError(f"the item cache needs {gb(need)} in {where} but {gb(free)} is free: free some space, "
                             f"set PADDY_ITEM_CACHE=DIR on a bigger disk, or train with --no-cache")
        with turn(where / f'{k}.lock'):
            c = whole(folder)
            if c is None:
                if folder.exists():
                    print(f"item cache: {folder} is damaged; building it again", file=sys.stderr)
                    shutil.rmtree(folder)
                _write(files, item, folder, shape, workers, data)
                built, c = True, Cache(folder)
    print(f"item cache: {'built' if built else 'reusing'} {folder} ({gb(c.meta['bytes'])}, {len(c)} images"
          + (f", {c.meta['build_s']:.0f} s)" if built else ')') + "; PADDY_ITEM_CACHE=off or --no-cache turns it off",
          file=sys.stderr)
    if built and data: _prune(folder, c.meta)
    return c


def whole(folder: Path) -> Cache | None:
    "The cache in `folder`; None when there is none yet, or only a damaged one (a disk filled, a file edited)."
    if not (folder / 'meta.json').exists(): return None
    try: return Cache(folder)
    except Damaged: return None


def _size(folder: Path) -> int:
    "The bytes `folder` takes on disk: a killed build's pixel file is sparse past what it wrote."
    return sum(f.stat().st_blocks * 512 for f in folder.rglob('*') if f.is_file())


def stale(where: Path, remove: bool = False) -> list[tuple[Path, int]]:
    """The temporary folders (`<key>.tmp-PID`) of builds killed before they finished, with the bytes each holds (its
    pixel file is sized to the whole cache at the start); removed with `remove`. A build holds its key's lock while its
    folder exists, so one whose lock is free is stale, wherever its process ran."""
    out = []
    for tmp in sorted(where.glob('*.tmp-*')) if where.is_dir() else []:
        if not tmp.is_dir(): continue
        lock = where / f"{tmp.name.split('.tmp-')[0]}.lock"
        with if_free(lock) as free:
            if not free or not tmp.is_dir(): continue  # being built now, or finished as we looked
            out.append((tmp, _size(tmp)))
            # under the lock, so no build of that key starts meanwhile
            if remove: shutil.rmtree(tmp, ignore_errors=True)
    return out


def reap(where: Path) -> list[tuple[Path, int]]: return stale(where, remove=True)


def caches(where: Path | None = None) -> list[dict]:
    "Every cache under `where`: folder, data folder, item transform, images, bytes, created; a damaged one says so."
    where = where or root()
    if where is None or not where.is_dir(): return []
    rows = []
    for m in sorted(where.glob('*/meta.json')):
        c = whole(m.parent)
        if c is None:
            n = _size(m.parent)
            rows.append(dict(cache=m.parent.name, item='damaged: built again when next needed', bytes=n, size=gb(n)))
            continue
        meta = c.meta
        rows.append(dict(cache=m.parent.name, data=meta.get('data'),
                         item=f"{meta['item']['method']} {tuple(meta['item']['size'])}",
                         images=meta['n'], size=gb(meta['bytes']), bytes=meta['bytes'], created=meta.get('created')))
    return rows


def describe(clear_all: bool = False) -> str:
    "Where the item cache lives and each image set it holds, with its size; `clear_all` removes them all instead."
    import pandas as pd
    where = root()
    if where is None: return 'the item cache is off (PADDY_ITEM_CACHE=off)'
    if clear_all:
        freed, busy = clear(where)
        if not busy: return f'removed {where} ({gb(freed)})'
        return (f"removed {gb(freed)} from {where}; left {len(busy)} being built now ({', '.join(busy)}): "
                "`paddy cache --clear` again once that build ends")
    rows, dead = caches(where), stale(where)
    head = (f"{where}: {len(rows)} cached image sets, {gb(sum(r['bytes'] for r in rows))}; set PADDY_ITEM_CACHE=DIR "
            "to move it, PADDY_ITEM_CACHE=off or paddy train --no-cache to go without")
    if dead:
        head += (f"\nstale builds, killed before they finished: {len(dead)}, {gb(sum(n for _, n in dead))} on disk "
                 f"({', '.join(t.name for t, _ in dead)}); the next build removes them, as does `paddy cache --clear`")
    if not rows: return head
    return head + '\n' + table_text(pd.DataFrame(rows).drop(columns='bytes'))


def clear(where: Path | None = None) -> tuple[int, list[str]]:
    """Remove every cache under `where`, and what stopped builds left, but not a build in progress (it holds its key's
    lock): the bytes freed, and the keys left because they are being built."""
    where = where or root()
    if where is None or not where.is_dir(): return 0, []
    busy = []
    with contextlib.ExitStack() as held:
        for k in sorted({p.name.split('.')[0] for p in where.iterdir()}):
            if not held.enter_context(if_free(where / f'{k}.lock')): busy.append(k)
        # under every free key's lock, so that no build of those starts meanwhile
        if not busy:
            freed = _size(where)
            shutil.rmtree(where)
            return freed, []
        freed = 0
        for p in where.iterdir():
            if p.name.split('.')[0] in busy: continue
            freed += _size(p) if p.is_dir() else p.stat().st_blocks * 512
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return freed, busy
