"""The fast item pipeline: decode each photo at reduced scale when the target allows, item-transform it once, and keep
the uint8 result in an on-disk cache that every later epoch, and every later run with the same item transform, reads."""
import hashlib, json, os, shutil, sys, time
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import PaddyError

FORMAT = 1  # bump when what is stored changes, so an old cache is never read as a new one
OFF = ('0', 'off', 'false', 'no')


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
    """`fn` decoded and item-transformed, as a contiguous (3, rows, cols) uint8 array. squish and pad equal fastai's `Resize`
    in validation (pad centred); crop keeps the whole photo scaled to cover `item.size`, for `CropTensor` to cut."""
    with Image.open(fn) as im:
        w, h = im.size
        size = item.content(w, h)
        if im.format == 'JPEG' and size == (w, h) and (item.method != 'pad' or item.size == (h, w)):
            a = _jpeg(fn)  # nothing to resize: torchvision's libjpeg-turbo, the same pixels as PIL's at half the cost
            if a is not None: return a
        # a JPEG decodes at 1/2, 1/4 or 1/8 scale in the DCT, never below the target: a fraction of the work
        im.draft(None, size)
        im.load()
        im = im._new(im.im)  # a plain Image, as fastai's `load_image` makes: its transforms keep the type they are given
    if im.mode != 'RGB': im = im.convert('RGB')  # grayscale, CMYK, RGBA, palette; an RGB convert would only copy
    if item.method == 'pad': im = _resize(item)(im, split_idx=1)
    # squish and crop are one bilinear resize (fastai's squish first crops to the whole photo, which changes nothing)
    elif im.size != (size := item.content(*im.size)): im = im.resize(size, Image.BILINEAR)
    # channels first once here, so every later epoch's collate stacks contiguous images
    return np.ascontiguousarray(np.asarray(im).transpose(2, 0, 1))


def _jpeg(fn) -> np.ndarray | None:
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    try: return np.ascontiguousarray(decode_jpeg(read_file(str(fn)), mode=ImageReadMode.RGB).numpy())
    except RuntimeError: return None  # a JPEG that libjpeg-turbo's torchvision build refuses: PIL tries it next


def root() -> Path | None:
    "Where caches live: $PADDY_ITEM_CACHE, else <paddy's cache>/items; None when PADDY_ITEM_CACHE=off."
    env = os.environ.get('PADDY_ITEM_CACHE', '')
    if env.lower() in OFF and env: return None
    if env: return Path(env)
    from ..weights import cache_dir
    return cache_dir() / 'items'


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
        self.meta = json.loads((self.folder / 'meta.json').read_text())
        self.index = {f: i for i, f in enumerate(self.meta['files'])}
        self.spans = np.load(self.folder / 'spans.npy')  # per file: offset, channels, rows, cols
        self.pixels = np.memmap(self.folder / 'pixels.u8', np.uint8, 'r') if self.meta['bytes'] else None

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
        except OSError: self.folder, self.meta, self.index = Path(state['folder']), {}, {}


def gb(n: int) -> str: return f'{n / 1e9:.1f} GB' if n >= 1e8 else f'{n / 1e6:.1f} MB'


def _estimate(files, item: Item) -> int:
    if item.method != 'crop': return len(files) * 3 * item.size[0] * item.size[1]
    with Image.open(files[0]) as im: w, h = item.content(*im.size)
    return len(files) * 3 * w * h


def _write(files, item: Item, folder: Path, workers: int, data: str | None):
    "Decode `files` into a temporary folder beside `folder`, then rename it into place: readers never see half a cache."
    from tqdm.auto import tqdm
    tmp = folder.with_name(f'{folder.name}.tmp-{os.getpid()}')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        spans, offset, t0 = [], 0, time.perf_counter()
        pool = None
        if workers > 1:
            import multiprocessing as mp
            pool = mp.get_context('fork').Pool(workers)  # the children only decode; they never touch CUDA
        arrays = pool.imap(partial(decode, item=item), files, chunksize=16) if pool else (decode(f, item) for f in files)
        try:
            with open(tmp / 'pixels.u8', 'wb') as out:
                for a in tqdm(arrays, total=len(files), desc='item cache', unit='img', leave=False, file=sys.stderr, disable=None):
                    out.write(a.data)
                    spans.append((offset, *a.shape))
                    offset += a.nbytes
        finally:
            if pool: pool.terminate()
        np.save(tmp / 'spans.npy', np.array(spans, dtype=np.int64).reshape(-1, 4))
        from ..provenance import stamp
        meta = dict(format=FORMAT, item=dict(method=item.method, size=list(item.size)), data=data, n=len(files), bytes=offset,
                    build_s=round(time.perf_counter() - t0, 1), files=[str(f) for f in files], **stamp())
        (tmp / 'meta.json').write_text(json.dumps(meta))  # last: a folder with meta.json is whole
        os.rename(tmp, folder)
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
            print(f"item cache: removed {m.parent} ({gb(old.get('bytes', 0))}), made before the images changed", file=sys.stderr)


def build(files, item: Item, where: Path, workers: int = 0, data: str | None = None) -> Cache:
    "The cache of `files` under `item` in `where`, built once; runs started together wait for one writer, then share it."
    files = [str(f) for f in files]
    k = key(files, item)
    folder = where / k
    built = False
    if not (folder / 'meta.json').exists():
        where.mkdir(parents=True, exist_ok=True)
        need, free = _estimate(files, item), shutil.disk_usage(where).free
        if need > free: raise PaddyError(f"the item cache needs {gb(need)} in {where} but {gb(free)} is free: free some space, "
                                         f"set PADDY_ITEM_CACHE=DIR on a bigger disk, or train with --no-cache")
        with open(where / f'{k}.lock', 'w') as lock:
            _lock(lock)
            if not (folder / 'meta.json').exists():
                _write(files, item, folder, workers, data)
                built = True
    c = Cache(folder)
    print(f"item cache: {'built' if built else 'reusing'} {folder} ({gb(c.meta['bytes'])}, {len(c)} images"
          + (f", {c.meta['build_s']:.0f} s)" if built else ')') + "; PADDY_ITEM_CACHE=off or --no-cache turns it off", file=sys.stderr)
    if built and data: _prune(folder, c.meta)
    return c


def _lock(f):
    try: import fcntl
    except ImportError: return  # no flock (Windows): the atomic rename alone keeps readers safe
    fcntl.flock(f, fcntl.LOCK_EX)


def caches(where: Path | None = None) -> list[dict]:
    "Every whole cache under `where`: folder, data folder, item transform, images, bytes, created."
    where = where or root()
    if where is None or not where.is_dir(): return []
    rows = []
    for m in sorted(where.glob('*/meta.json')):
        meta = json.loads(m.read_text())
        rows.append(dict(cache=m.parent.name, data=meta.get('data'), item=f"{meta['item']['method']} {tuple(meta['item']['size'])}",
                         images=meta['n'], size=gb(meta['bytes']), bytes=meta['bytes'], created=meta.get('created')))
    return rows


def clear(where: Path | None = None) -> int:
    "Remove every cache under `where`, and what stopped builds left; return the bytes freed."
    where = where or root()
    if where is None or not where.is_dir(): return 0
    freed = sum(f.stat().st_size for f in where.rglob('*') if f.is_file())
    shutil.rmtree(where)
    return freed
