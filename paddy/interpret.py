"""What a model gets wrong, on the shared validation split: a confusion matrix, a per-class table, the top losses.
Computed from the saved TTA probabilities, so a run and an ensemble (which has no Learner) are read the same way, and
the counts are those of the run's TTA error; fastai's `ClassificationInterpretation` would recompute plain predictions
from a Learner instead."""
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import PaddyError
from .files import folder_once, never_overwrite, write_json
from .predict import confusion, most_confused
from .provenance import stamp
from .tables import table_text
from .workspace import Workspace, here


def per_class(cm: np.ndarray, vocab) -> pd.DataFrame:
    "Each class's validation images, error, precision and recall, from confusion matrix `cm`; a last row for all."
    n, hit, called = cm.sum(1), np.diag(cm), cm.sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        df = pd.DataFrame(dict(label=[str(v) for v in vocab], images=n, error=1 - hit / n,
                               precision=np.where(called > 0, hit / np.maximum(called, 1), np.nan), recall=hit / n))
    total = dict(label='(all)', images=int(n.sum()), error=1 - hit.sum() / n.sum(), precision=np.nan, recall=np.nan)
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


def probabilities(run: str | None, ensemble: str | None, ws: Workspace) -> tuple[dict, dict]:
    """The validation probabilities, targets, ids, vocab and data folder of `run`, or of the ensemble `ensemble` (its
    members' TTA probabilities combined with its weights), and what they came from."""
    from .ensemble import rebuilt, recorded, shared_split
    from .predict import load_preds
    if (run is None) == (ensemble is None):
        raise PaddyError("give a run (paddy interpret RUN) or an ensemble (paddy interpret --ensemble NAME), one of "
                         "the two")
    if run:
        f = ws.probs(run)
        if not f.is_file(): raise PaddyError(f"no predictions {f}: train the run, or `paddy predict {run}`")
        p, source = load_preds(f), dict(run=run, preds=[str(f)])
    else:
        meta, members = recorded(ensemble, ws)
        if not shared_split(dict(enumerate(members))):
            raise PaddyError(f"{ensemble}'s runs do not share one validation split, so it has no validation "
                             "predictions to interpret: interpret its runs one by one")
        p = dict(members[0])
        p['valid_probs'] = rebuilt(meta, members, 'valid')
        source = dict(ensemble=ensemble, runs=meta['runs'], weights=meta['weights'], preds=meta['preds'])
    if 'valid_probs' not in p:
        raise PaddyError(f"{run or ensemble} has no validation predictions (its vocab or split is not in this data's "
                         "train.csv): predict it with `paddy predict RUN --data DIR` on the folder it trained on")
    return p, source


def interpret(run: str | None = None, ensemble: str | None = None, out: Path | None = None, top: int = 9,
              ws: Workspace | None = None, data=None) -> dict:
    """Write `out` (reports/interpret-NAME/): confusion.png, classes.csv and top_losses.png, with interpret.json
    naming what they came from; print the per-class table and the most confused pairs."""
    if top < 1: raise PaddyError(f"--top {top}: give 1 or more")
    name, ws = run or ensemble, ws or here()
    out = out or ws.interpretation(name)
    never_overwrite(out, hint='pass --out OTHER')  # before any work
    p, source = probabilities(run, ensemble, ws)
    vocab, targets, probs = [str(v) for v in p['vocab']], p['valid_targets'], p['valid_probs']
    cm = confusion(targets, probs.argmax(1), len(vocab))
    table = per_class(cm, vocab)
    losses = -np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-12, None))
    worst = np.argsort(-losses, kind='stable')[:top]
    files, pairs = images(p, data), most_confused(cm, vocab, 3)
    # written whole into a temporary folder, then moved: a stop leaves no half interpretation under its name
    with folder_once(out, hint='pass --out OTHER') as tmp:
        table.to_csv(tmp / 'classes.csv', index=False)
        plot_confusion(cm, vocab, tmp / 'confusion.png', name)
        plot_top_losses(p, worst, losses, files, tmp / 'top_losses.png')
        worst_rows = [dict(image_id=str(p['valid_ids'][k]), true=vocab[targets[k]], predicted=vocab[probs[k].argmax()],
                           p_predicted=float(probs[k].max()), p_true=float(probs[k, targets[k]]),
                           loss=float(losses[k])) for k in worst]
        meta = dict(**source, n_valid=int(cm.sum()), error_rate=float(1 - np.trace(cm) / cm.sum()),
                    confusion=cm.tolist(), vocab=vocab, most_confused=pairs, top_losses=worst_rows,
                    files={k: str(out / f) for k, f in (('confusion', 'confusion.png'), ('classes', 'classes.csv'),
                                                        ('top_losses', 'top_losses.png'))}, **stamp())
        write_json(tmp / 'interpret.json', meta)
    print(table_text(table))
    if pairs: print('most confused (true → predicted): ' + ', '.join(f'{a} → {b} ×{n}' for a, b, n in pairs))
    print(f'wrote {out}/: confusion.png, classes.csv, top_losses.png')
    return meta


def images(p: dict, data=None) -> dict:
    "Validation id → image file, from the data folder the predictions were made on (or `data`)."
    from .data import find_data, read_train
    path = find_data(data, str(p['data']) if Path(str(p.get('data', ''))).is_dir() else None)
    return dict(zip(*read_train(path)[['image_id', 'path']].T.values))


def plot_confusion(cm: np.ndarray, vocab: list[str], png: Path, title: str):
    "The confusion matrix as fastai draws it: true classes down, predictions across, counts in the cells."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    k = len(vocab)
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * k + 2), max(4, 0.6 * k + 2)), dpi=100)
    ax.imshow(cm, cmap='Blues')
    ax.set_xticks(range(k), vocab, rotation=90)
    ax.set_yticks(range(k), vocab)
    for i in range(k):
        for j in range(k):
            dark = cm[i, j] > cm.max() / 2
            ax.text(j, i, str(cm[i, j]), ha='center', va='center', color='white' if dark else 'black')
    ax.set(xlabel='predicted', ylabel='true', title=f'{title}: {int(cm.sum())} validation images')
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def plot_top_losses(p: dict, worst: np.ndarray, losses: np.ndarray, files: dict, png: Path):
    "A grid of the `worst` validation images, each titled true / predicted / the predicted class's probability."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from PIL import Image
    vocab, cols = [str(v) for v in p['vocab']], min(3, len(worst))
    rows = -(-len(worst) // cols)
    fig, axs = plt.subplots(rows, cols, figsize=(3.2 * cols, 4.0 * rows), dpi=100, squeeze=False)
    for ax in axs.flat: ax.axis('off')
    for ax, k in zip(axs.flat, worst):
        img_id, t, pr = str(p['valid_ids'][k]), int(p['valid_targets'][k]), int(p['valid_probs'][k].argmax())
        with Image.open(files[img_id]) as im: ax.imshow(im.convert('RGB'))
        ax.set_title(f'{vocab[t]} / {vocab[pr]}\np={p["valid_probs"][k, pr]:.2f}, loss {losses[k]:.2f}', fontsize=9)
    fig.suptitle('top losses: true / predicted')
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
