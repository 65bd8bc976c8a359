"""`paddy export`: a finished run as a folder that loads anywhere: model.safetensors, config.json, a model card and
predict.py (`paddy.portable`), checked against the Learner's own predictions before it is written."""
import json, shutil
from pathlib import Path

import numpy as np

from . import portable
from .data import find_data, read_train
from .errors import PaddyError
from .files import folder_once, never_overwrite, sha256
from .predict import load_model, model_file
from .provenance import stamp
from .record import read_record
from .workspace import Workspace

PARITY_TOL, PARITY_IMAGES = 1e-4, 32  # the promise: the export's plain view equals the Learner's


def head_layer(m, i: int, run: str) -> dict:
    "One layer of fastai's head as plain data; a layer `portable` cannot rebuild is refused, naming it."
    import torch.nn as nn
    from fastai.layers import AdaptiveConcatPool2d, Flatten
    if isinstance(m, AdaptiveConcatPool2d) and m.size in (1, (1, 1)): return dict(type='concat_pool')
    if type(m) is nn.AdaptiveAvgPool2d and m.output_size in (1, (1, 1)): return dict(type='avg_pool')
    if isinstance(m, Flatten) and not m.full: return dict(type='flatten')
    if type(m) is nn.BatchNorm1d and m.affine and m.track_running_stats:
        return dict(type='batch_norm', features=m.num_features, eps=m.eps)
    if type(m) is nn.Dropout: return dict(type='dropout', p=m.p)
    if type(m) is nn.Linear: return dict(type='linear', **{'in': m.in_features, 'out': m.out_features,
                                                            'bias': m.bias is not None})
    if type(m) is nn.ReLU: return dict(type='relu')
    raise PaddyError(f"{run}: its head's layer {i} ({type(m).__name__}) cannot be exported: only fastai's default "
                     "head (pooling, batch norm, dropout, linear, ReLU) can be")


def network(learn, run: str, arch: str) -> tuple[dict, dict]:
    "The config's architecture and head, and the weights under `portable.Net`'s names (`body.`, `head.`)."
    import timm, torch.nn as nn
    from fastai.vision.learner import TimmBody
    m = getattr(learn.model, '_orig_mod', learn.model)  # torch.compile's wrapper, where a model was wrapped
    if not (isinstance(m, nn.Sequential) and len(m) == 2 and isinstance(m[0], TimmBody)):
        raise PaddyError(f"{run}: {arch} is not a timm model with fastai's head, so it cannot be exported: export "
                         "needs a timm arch (see timm.list_models)")
    if not timm.is_model(arch): raise PaddyError(f"{run}: unknown architecture '{arch}': timm cannot build it")
    head = [head_layer(x, i, run) for i, x in enumerate(m[1])]
    names = {'0.model.': 'body.', '1.': 'head.'}
    sd = {}
    for k, v in m.state_dict().items():
        k = k.replace('_orig_mod.', '')  # a compiled model's wrapper, where one was saved
        new = next((n + k[len(o):] for o, n in names.items() if k.startswith(o)), None)
        if new is None: raise PaddyError(f"{run}: its weight {k} is in neither body nor head: it cannot be exported")
        sd[new] = v.detach().cpu().contiguous().clone()  # clones: safetensors refuses tensors that share memory
    return dict(architecture=arch, model_args={}, body='forward_features' if m[0].needs_pool else 'forward',
                head=head), sd


def preprocess(learn, rec) -> dict:
    "What the run's validation view does to a photo, read from the Learner's own transforms."
    from fastai.vision.all import AffineCoordTfm, IntToFloatTensor, Normalize
    from .data.loaders import item
    from .data.tfms import ScaledCrop
    fs = list(learn.dls.after_batch.fs)
    crop = [t for t in fs if isinstance(t, ScaledCrop)]
    norm = [t for t in fs if isinstance(t, Normalize)]
    if len(crop) != 1 or not any(isinstance(t, IntToFloatTensor) for t in fs):
        raise PaddyError(f"{rec.run}: its Learner has no ScaledCrop of paddy's to read its view from: train it again "
                         "with this paddy to export it")
    # fastai's affine augmentations (flip, zoom, rotate, warp) still resample in validation, by the identity: a grid
    # sample of the whole item before the crop, which moves each pixel by a few 1e-6
    affine = [t for t in fs[:fs.index(crop[0])] if isinstance(t, AffineCoordTfm)]
    it = item(rec.experiment)
    return dict(resize=it.method, item_size=list(it.size), crop=list(it.size) if it.method == 'crop' else None,
                identity_resample=dict(align_corners=affine[0].align_corners) if affine else None,
                size=list(crop[0].size), scale=float(crop[0].valid_scale), interpolation='bilinear',
                mean=norm[0].mean.flatten().tolist() if norm else None,
                std=norm[0].std.flatten().tolist() if norm else None)


def groups(learn) -> list[dict]:
    "The output groups: the disease labels, then a variety head's."
    v = learn.dls.vocab
    if isinstance(v[0], str): return [dict(name='label', labels=[str(x) for x in v])]
    return [dict(name='label', labels=[str(x) for x in v[0]]), dict(name='variety', labels=[str(x) for x in v[1]])]


def parity_files(rec, data=None) -> list[str]:
    "Up to `PARITY_IMAGES` of the run's own photos: its validation split, else its training set."
    path = find_data(data, recorded=rec.data)
    df = read_train(path).set_index('image_id')
    ids = [i for i in rec.valid_ids if i in df.index] or list(df.index)
    return df.loc[ids[:PARITY_IMAGES]].path.tolist()


def learner_probs(learn, files: list[str]) -> np.ndarray:
    "The Learner's plain probabilities of `files` (`get_preds` on a test DataLoader: the validation view)."
    from .data import num_workers
    dl = learn.dls.test_dl(files, num_workers=num_workers())
    with learn.no_bar(), learn.no_logging(): p, _ = learn.get_preds(dl=dl)
    return p.float().numpy()


def export_probs(folder: Path, files) -> np.ndarray:
    "The export in `folder`'s plain probabilities of `files`, loaded as any user would (`portable.load`)."
    import torch
    try: net, cfg = portable.load(folder)
    except portable.ExportError as e: raise PaddyError(str(e)) from None
    x = torch.stack([portable.pixels(f, cfg['preprocess']) for f in files])
    return portable.probs(net, cfg, portable.view(x, cfg['preprocess'])).numpy()


def write_export(learn, rec, dest: Path, ws: Workspace, data=None) -> dict:
    "Fill folder `dest` with `rec`'s export, check its parity with `learn`, and return its config."
    from safetensors.torch import save_file
    arch, sd = network(learn, rec.run, rec.experiment.arch)
    save_file(sd, str(dest / 'model.safetensors'), metadata={'format': 'pt'})
    gs = groups(learn)
    cfg = dict(format='paddy-export', schema=portable.SCHEMA, **arch, groups=gs,
               labels=gs[0]['labels'], num_classes=sum(len(g['labels']) for g in gs),  # timm's names, for its tools
               preprocess=preprocess(learn, rec), tta=['plain', 'flip'] if rec.experiment.flip else ['plain'],
               provenance=dict(run=rec.run, record=rec.to_dict(), weights_sha256=sha256(dest / 'model.safetensors'),
                               exported=stamp()))
    write(dest / 'config.json', cfg)
    shutil.copyfile(Path(portable.__file__), dest / 'predict.py')
    files = parity_files(rec, data)
    print(f"{rec.run}: checking the export against the Learner on {len(files)} of its photos")
    diff = float(np.abs(export_probs(dest, files) - learner_probs(learn, files)).max())
    if not diff <= PARITY_TOL:
        raise PaddyError(f"{rec.run}: the export's probabilities differ from the Learner's by {diff:.2g} (more than "
                         f"{PARITY_TOL:g}), so it is not written: report this with the run's .json")
    cfg['provenance']['parity'] = dict(images=len(files), max_abs_diff=diff, tolerance=PARITY_TOL)
    write(dest / 'config.json', cfg)
    from .card import card
    (dest / 'README.md').write_text(card(rec, cfg, dest, ws))
    return cfg


def cpu_learner(pkl: Path):
    "Run `pkl`'s Learner on the CPU, where the export is checked: a GPU's kernels would differ in the last bits."
    learn = load_model(pkl, ours=True)
    learn.model.cpu()
    learn.dls.cpu()
    return learn


def write(path: Path, d: dict): Path(path).write_text(json.dumps(d, indent=1, default=str) + '\n')


def export(run: str, ws: Workspace, out: Path | None = None, data=None) -> Path:
    "Export finished run `run` to `out` (default exports/RUN/), whole or not at all."
    if out: never_overwrite(out, hint='pass --out OTHER, or move it aside')
    pkl, run = model_file(run, ws)
    rec = read_record(pkl.with_suffix('.json'))
    out = Path(out) if out else ws.export(run)
    never_overwrite(out, hint='pass --out OTHER, or move it aside')  # before loading anything
    learn = cpu_learner(pkl)
    with folder_once(out, hint='pass --out OTHER, or move it aside') as tmp: write_export(learn, rec, tmp, ws, data)
    print(f"{run}: wrote {out}/ (model.safetensors, config.json, README.md, predict.py)")
    return out


def export_ensemble(name: str, ws: Workspace, out: Path | None = None, data=None) -> Path:
    "Export ensemble `name`'s members once each into `out`/members/, with its weights in ensemble.json."
    from .ensemble import recorded
    if out: never_overwrite(out, hint='pass --out OTHER, or move it aside')
    meta, _ = recorded(name, ws, keys=('run',))
    if meta.get('method') == 'vote':
        raise PaddyError(f"ensemble {name} votes, and an export averages probabilities: make one without --vote")
    weights: dict[str, float] = {}
    for run, w in zip(meta['runs'], meta['weights']):
        if w > 0: weights[run] = weights.get(run, 0.0) + float(w)  # one run predicted twice is one member
    out = Path(out) if out else ws.export(name)
    never_overwrite(out, hint='pass --out OTHER, or move it aside')
    with folder_once(out, hint='pass --out OTHER, or move it aside') as tmp:
        for k, run in enumerate(weights, 1):
            print(f"[{k}/{len(weights)}] {run}")
            pkl, _ = model_file(run, ws)
            learn = cpu_learner(pkl)
            (tmp / 'members' / run).mkdir(parents=True)
            write_export(learn, read_record(pkl.with_suffix('.json')), tmp / 'members' / run, ws, data)
        write(tmp / 'ensemble.json', dict(format='paddy-ensemble', schema=portable.SCHEMA, name=name,
                                          members=[dict(run=r, path=f'members/{r}', weight=w)
                                                   for r, w in weights.items()],
                                          method=meta.get('method', 'mean'), submission=meta.get('csv'),
                                          submission_sha256=meta.get('sha256'), valid_error=meta.get('valid_error'),
                                          provenance=stamp()))
    print(f"ensemble {name}: wrote {out}/ ({len(weights)} members)")
    return out
