"""`paddy predict MODEL FOLDER`: labels for every photo under a folder, from a run, an export or an exported ensemble,
streamed in batches to a CSV; a photo that cannot be read gets a row with its error, and the rest go on."""
import csv, json, sys, time
from pathlib import Path

import numpy as np

from . import portable
from .errors import PaddyError
from .files import never_overwrite, written_once
from .workspace import Workspace

BS = 32  # photos a batch: memory stays flat however many there are (and 32 ran faster than 64 on 2 CPU cores)


class Export:
    "An export folder's network: no pickle, so no --trust."
    def __init__(self, folder: Path, weight: float = 1.0):
        import torch
        try: self.net, self.cfg = portable.load(folder, 'cuda' if torch.cuda.is_available() else 'cpu')
        except portable.ExportError as e: raise PaddyError(str(e)) from None
        self.labels, self.weight = self.cfg['groups'][0]['labels'], weight

    def __call__(self, files: list[Path], tta: bool) -> tuple[np.ndarray, dict[int, str]]:
        "Probabilities of the readable `files`, in order, and the error of each one that is not, by index."
        xs, bad = [], {}
        for i, f in enumerate(files):
            try: xs.append(portable.pixels(f, self.cfg['preprocess']))
            except Exception as e: bad[i] = one_line(e)  # whatever Pillow raises for a file it cannot read
        if not xs: return np.zeros((0, len(self.labels)), np.float32), bad
        import torch
        p = portable.probs(self.net, self.cfg, portable.view(torch.stack(xs), self.cfg['preprocess']), tta)
        return p[:, :len(self.labels)].numpy(), bad


class Ensemble:
    "An exported ensemble: its members' probabilities, averaged with its weights."
    def __init__(self, folder: Path):
        meta = json.loads((folder / 'ensemble.json').read_text())
        if meta.get('schema', 1) > portable.SCHEMA:
            raise PaddyError(f"{folder} is an ensemble export of schema {meta['schema']}, newer than this paddy's "
                             f"{portable.SCHEMA}: upgrade paddy")
        self.members = [Export(folder / m['path'], m['weight']) for m in meta['members']]
        self.labels = self.members[0].labels
        if any(m.labels != self.labels for m in self.members):
            raise PaddyError(f"{folder}: its members have different labels: export the ensemble again")

    def __call__(self, files, tta):
        got = [m(files, tta) for m in self.members]
        bad = {i: e for _, b in got for i, e in b.items()}  # a photo one member cannot read, none predicts
        total, p = sum(m.weight for m in self.members), 0.0
        for m, (pm, b) in zip(self.members, got):
            kept = [i for i in range(len(files)) if i not in b]  # the rows of `pm`
            p = p + m.weight / total * pm[[k for k, i in enumerate(kept) if i not in bad]]
        return np.asarray(p, np.float32).reshape(-1, len(self.labels)), bad


class Run:
    "A run's fastai Learner: its plain view, or its TTA (fastai's, as the run's own predictions were made)."
    def __init__(self, run: str, ws: Workspace, trust: bool):
        from .predict import disease_vocab, load_model, model_file
        pkl, run = model_file(run, ws, trust)
        self.learn = load_model(pkl, ours=True)
        self.labels = [str(v) for v in disease_vocab(self.learn.dls)]

    def _probs(self, files, tta):
        dl = self.learn.dls.test_dl([str(f) for f in files], num_workers=0)
        with self.learn.no_bar(), self.learn.no_logging():
            p = self.learn.tta(dl=dl, n=4)[0] if tta else self.learn.get_preds(dl=dl)[0]
        return p.float().numpy()[:, :len(self.labels)]

    def __call__(self, files, tta):
        try: return self._probs(files, tta), {}
        except Exception:  # a photo fastai cannot read: find which, and predict the others
            bad = {}
            for i, f in enumerate(files):
                try: readable(f)
                except Exception as e: bad[i] = one_line(e)
            if not bad: raise
            good = [f for i, f in enumerate(files) if i not in bad]
            return (self._probs(good, tta) if good else np.zeros((0, len(self.labels)), np.float32)), bad


def readable(f):
    "Raise what Pillow raises for a photo it cannot decode."
    from PIL import Image
    with Image.open(f) as im: im.load()


def one_line(e: Exception) -> str: return ' '.join(f'{type(e).__name__}: {e}'.split())


def model(name: str, ws: Workspace, trust: bool = False):
    "What `name` is: an export folder, an exported ensemble, or a run in the workspace."
    p = Path(name)
    if p.is_dir() and (p / 'ensemble.json').is_file(): return Ensemble(p)
    if p.is_dir() and (p / 'config.json').is_file(): return Export(p)
    if p.is_dir(): raise PaddyError(f"{p} holds neither config.json nor ensemble.json: create one with `paddy export`")
    return Run(name, ws, trust)


def check_without_folder(name: str, top_k: int, tta: bool, probs: bool):
    "`paddy predict MODEL` alone recomputes a run's competition predictions: refuse what only a FOLDER can take."
    if any((Path(name) / f).is_file() for f in ('config.json', 'ensemble.json')):
        raise PaddyError(f"{name} is an export: give a FOLDER of photos to label, e.g. paddy predict {name} photos/")
    if top_k != 1 or tta or probs:
        raise PaddyError(f"--top-k, --tta and --probs are for labelling a FOLDER: give one, e.g. paddy predict {name} "
                         "photos/")


def photos(folder: Path) -> list[tuple[Path, str]]:
    "Every photo under `folder`, recursively, by the extensions Pillow reads, with its path relative to `folder`."
    if not folder.is_dir(): raise PaddyError(f"no folder {folder}: give a folder of photos")
    return portable.photos([folder])


def predict_folder(name: str, folder: Path, ws: Workspace, out: Path | None = None, top_k: int = 1,
                   tta: bool = False, probs: bool = False, trust: bool = False) -> tuple[Path, int, int]:
    "Write a CSV row for every photo under `folder`: its top `top_k` labels and probabilities, or its error."
    from tqdm import tqdm
    folder = Path(folder)
    todo = photos(folder)
    if not todo: raise PaddyError(f"no photos under {folder}: Pillow reads none of its files' extensions")
    out = Path(out) if out else ws.folder_preds(Path(name).name, time.strftime('%Y%m%d-%H%M%S'))
    never_overwrite(out, hint='pass --out OTHER.csv')  # before any work
    m = model(name, ws, trust)
    if not 1 <= top_k <= len(m.labels): raise PaddyError(f"--top-k {top_k}: give 1 to {len(m.labels)}")
    head = ['filename'] + [c + ('' if k == 0 else f'_{k + 1}') for k in range(top_k) for c in ('label', 'probability')]
    head += [f'p_{c}' for c in m.labels] * probs + ['error']
    failed = 0
    with written_once(out, hint='pass --out OTHER.csv') as tmp, open(tmp, 'w', newline='') as fh:
        w = csv.writer(fh)
        w.writerow(head)
        with tqdm(total=len(todo), unit='photo', file=sys.stderr, disable=None) as bar:
            for i in range(0, len(todo), BS):
                chunk = todo[i:i + BS]
                p, bad = m([f for f, _ in chunk], tta)
                rows = iter(p)
                for k, (_, rel) in enumerate(chunk):
                    if k in bad:
                        w.writerow([rel] + [''] * (len(head) - 2) + [bad[k]])
                        print(f'{rel}: cannot read: {bad[k]}', file=sys.stderr)
                        continue
                    row = next(rows)
                    top = np.argsort(-row, kind='stable')[:top_k]
                    w.writerow([rel] + [x for j in top for x in (m.labels[j], f'{row[j]:.6f}')]
                               + [f'{x:.6f}' for x in row] * probs + [''])
                failed += len(bad)
                fh.flush()
                bar.update(len(chunk))
    return out, len(todo), failed
