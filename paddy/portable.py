"""Load and run a paddy export with torch, timm, safetensors, numpy and Pillow alone: no fastai, no paddy, no pickle.
`paddy export` copies this file into each export as predict.py, and `paddy predict EXPORT` imports it, so the two
predict alike. Usage: python predict.py PHOTO_OR_FOLDER… > predictions.csv"""
import csv, json, sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

SCHEMA = 1  # config.json's; a reader refuses a newer one rather than load it wrongly


class ExportError(Exception):
    "An export that cannot load as it is: the message is one line that names the fix."


class ConcatPool(nn.Module):  # fastai's AdaptiveConcatPool2d: max then mean, side by side
    def forward(self, x): return torch.cat([F.adaptive_max_pool2d(x, 1), F.adaptive_avg_pool2d(x, 1)], 1)


LAYERS = {'concat_pool': lambda d: ConcatPool(), 'avg_pool': lambda d: nn.AdaptiveAvgPool2d(1),
          'flatten': lambda d: nn.Flatten(), 'relu': lambda d: nn.ReLU(),
          'dropout': lambda d: nn.Dropout(d['p']),  # nothing in evaluation; kept so the layer numbers match
          'batch_norm': lambda d: nn.BatchNorm1d(d['features'], eps=d['eps']),
          'linear': lambda d: nn.Linear(d['in'], d['out'], bias=d['bias'])}


class Net(nn.Module):
    "The timm body (without its classifier) and fastai's head, as config.json describes them."
    def __init__(self, cfg: dict):
        import timm
        super().__init__()
        if not timm.is_model(cfg['architecture']):
            made = cfg.get('provenance', {}).get('exported', {}).get('versions', {}).get('timm')
            raise ExportError(f"timm {timm.__version__} has no architecture '{cfg['architecture']}': install the timm "
                              "this export was made with" + (f" ({made})" if made else ''))
        self.body = timm.create_model(cfg['architecture'], pretrained=False, num_classes=0, **cfg['model_args'])
        self.features, self.head = cfg['body'], nn.Sequential(*[LAYERS[d['type']](d) for d in cfg['head']])

    def forward(self, x):
        x = self.body.forward_features(x) if self.features == 'forward_features' else self.body(x)
        return self.head(x)


def load(folder, device='cpu') -> tuple[Net, dict]:
    "The network of export `folder`, in evaluation mode, and its config; an export that does not fit is `ExportError`."
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    folder = Path(folder)
    try: cfg = json.loads((folder / 'config.json').read_text())
    except (OSError, ValueError) as e: raise ExportError(f"{folder}/config.json cannot be read ({e}): export again")
    if cfg.get('format') != 'paddy-export': raise ExportError(f"{folder} is not a paddy export: no format in config")
    if cfg['schema'] > SCHEMA:
        raise ExportError(f"{folder} is an export of schema {cfg['schema']}, newer than this reader's {SCHEMA}: use "
                          "its own predict.py, or upgrade paddy")
    try:
        net = Net(cfg)
        outs = [d['out'] for d in cfg['head'] if d['type'] == 'linear'][-1]
        if outs != sum(len(g['labels']) for g in cfg['groups']):
            raise ExportError(f"{folder}/config.json names {sum(len(g['labels']) for g in cfg['groups'])} labels but "
                              f"its head has {outs} outputs: export the run again")
    except (KeyError, TypeError, IndexError) as e:
        raise ExportError(f"{folder}/config.json lacks or garbles {e}: export the run again") from None
    try: sd = load_file(folder / 'model.safetensors')
    except (OSError, SafetensorError) as e:
        raise ExportError(f"{folder}/model.safetensors is damaged or truncated ({e}): copy or export it again")
    try: net.load_state_dict(sd)
    except RuntimeError as e:
        why = ' '.join(str(e).split())[:300]
        raise ExportError(f"{folder}/config.json does not match its weights ({why}): export the run again")
    return net.eval().to(device), cfg


def pixels(path, pre: dict) -> torch.Tensor:
    "Photo `path` as (3, rows, cols) floats, as the run's validation view made it (paddy.data.cache.decode)."
    rows, cols = pre['item_size']
    with Image.open(path) as im:
        w, h = im.size
        if pre['resize'] == 'squish': size = (cols, rows)
        else:
            r = (min if pre['resize'] == 'pad' else max)(cols / w, rows / h)
            size = (max(1, round(w * r)), max(1, round(h * r)))
        im.draft(None, size)  # a JPEG decodes at reduced scale, as in training: other pixels otherwise
        im.load()
        im = im.convert('RGB') if im.mode != 'RGB' else im.copy()
    if pre['resize'] == 'pad':  # fastai's Resize(method='pad'): centred, zeros, then a bilinear resize
        w, h = im.size
        m = w / cols if w / cols > h / rows else h / rows
        cw, ch = int(m * cols), int(m * rows)
        l, t = int(0.5 * (w - cw)), int(0.5 * (h - ch))
        im = im.crop((l, t, l + cw, t + ch)).resize((cols, rows), Image.BILINEAR)
    elif im.size != size: im = im.resize(size, Image.BILINEAR)
    x = torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy())
    if pre['resize'] == 'crop':  # the centre of the cover-sized photo
        H, W = x.shape[-2:]
        t, l = int(0.5 * (H - rows)), int(0.5 * (W - cols))
        x = x[:, t:t + rows, l:l + cols]
    return x.float() / 255


def view(x: torch.Tensor, pre: dict) -> torch.Tensor:
    "A batch of `pixels` cut to the centre `scale` of the final size's aspect, resized and normalised, as fastai did."
    (rows, cols), s = pre['size'], pre['scale']
    if pre.get('identity_resample'):  # what fastai's affine augmentations do in validation
        ac = pre['identity_resample']['align_corners']
        grid = F.affine_grid(torch.eye(3)[None, :2].expand(len(x), 2, 3), list(x.shape), align_corners=ac)
        x = F.grid_sample(x, grid, mode='bilinear', padding_mode='reflection', align_corners=ac)
    h, w = x.shape[-2:]
    r = cols / rows
    H, W = (h, min(w, round(h * r))) if w / h >= r else (min(h, round(w / r)), w)
    ch, cw = max(1, round(H * s)), max(1, round(W * s))
    t, l = (h - ch) // 2, (w - cw) // 2
    x = x[..., t:t + ch, l:l + cw]
    grid = F.affine_grid(torch.eye(3)[None, :2].expand(len(x), 2, 3), [len(x), 3, rows, cols], align_corners=True)
    d = min(x.shape[-2] / rows, x.shape[-1] / cols) / 2
    if d > 1: x = F.interpolate(x, scale_factor=1 / d, mode='area', recompute_scale_factor=True)  # fastai's, first
    x = F.grid_sample(x, grid, mode='bilinear', padding_mode='reflection', align_corners=True)
    if pre['mean'] is not None:
        x = (x - torch.tensor(pre['mean'])[:, None, None]) / torch.tensor(pre['std'])[:, None, None]
    return x


@torch.no_grad()
def probs(net: Net, cfg: dict, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    "Each output group's softmax of a `view` batch `x`; with `tta`, the mean over the config's views."
    def one(v):
        out, k = net(v), 0
        parts = []
        for g in cfg['groups']: parts, k = parts + [out[:, k:k + len(g['labels'])].softmax(1)], k + len(g['labels'])
        return torch.cat(parts, 1)
    views, x = cfg['tta'] if tta else ['plain'], x.to(next(net.parameters()).device)
    return (sum(one(x.flip(-1) if v == 'flip' else x) for v in views) / len(views)).cpu()


def photos(args) -> list[tuple[Path, str]]:
    """Each photo of `args` with the name it is reported by: a file as given, and under a folder, recursively, each file
    whose extension Pillow reads, by its path relative to the folder."""
    Image.init()
    exts, out = set(Image.registered_extensions()), []
    for a in map(Path, args):
        if a.is_dir(): out += [(p, p.relative_to(a).as_posix()) for p in sorted(a.rglob('*'))
                               if p.is_file() and p.suffix.lower() in exts]
        else: out.append((a, str(a)))
    return out


def main(argv=None) -> int:
    if not (argv := sys.argv[1:] if argv is None else argv) or argv[0] in ('-h', '--help'):
        print(__doc__.splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try: net, cfg = load(Path(__file__).resolve().parent, 'cuda' if torch.cuda.is_available() else 'cpu')
    except ExportError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    labels, bs, bad = cfg['groups'][0]['labels'], 32, 0
    out = csv.writer(sys.stdout, lineterminator='\n')
    out.writerow(['filename', 'label', 'probability'])
    todo = photos(argv)
    for i in range(0, len(todo), bs):
        xs, names = [], []
        for p, name in todo[i:i + bs]:
            try: xs.append(pixels(p, cfg['preprocess'])); names.append(name)
            except Exception as e:  # any photo Pillow cannot read: name it, go on with the rest
                print(f'{name}: cannot read: {e}', file=sys.stderr)
                bad += 1
        if not xs: continue
        p = probs(net, cfg, view(torch.stack(xs), cfg['preprocess']))[:, :len(labels)]
        for name, row in zip(names, p):
            out.writerow([name, labels[int(row.argmax())], f'{float(row.max()):.6f}'])
    return 1 if bad else 0


if __name__ == '__main__': sys.exit(main())
