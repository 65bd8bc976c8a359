"""One epoch of paddy's fastai Learner against a hand-written PyTorch loop: same timm model, same tensors, same batches,
CPU.

usage: .venv/bin/python benchmarks/train_overhead.py [--arch resnet18] [--size 64] [--bs 32] [--batches 24] [--rounds 5]
Both train one epoch with one-cycle AdamW and then score the validation batches; the ratio is what the Learner's
callbacks, metrics, scheduler and optimizer cost on top of the same arithmetic."""
import argparse, copy, time

import numpy as np
import torch
import torch.nn.functional as F
from fastai.vision.all import CrossEntropyLossFlat, DataLoader, DataLoaders, Learner

from paddy.train.learner import learner
from paddy.spec import Experiment
from paddy.train.loop import fit
from paddy.train.weights import Weights


def batches(n: int, bs: int, size: int, classes: int = 10, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(bs, 3, size, size,
                        generator=g), torch.randint(0, classes, (bs,), generator=g)) for _ in range(n)]


def paddy_epoch(learn: Learner, lr: float) -> float:
    "What `paddy train` runs for a random-init experiment, for one epoch."
    t = time.perf_counter()
    fit(learn, epochs=1, lr=lr, pretrained=False)
    return time.perf_counter() - t


def hand_epoch(model, trn, val, lr: float) -> float:
    "The same epoch written out: one-cycle AdamW over the training batches, then the error rate on the validation ones."
    t = time.perf_counter()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=len(trn), pct_start=0.25)
    model.train()
    for xb, yb in trn:
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    model.eval()
    wrong = n = 0
    with torch.no_grad():
        for xb, yb in val:
            wrong += (model(xb).argmax(1) != yb).sum().item()
            n += len(yb)
    _ = wrong / n
    return time.perf_counter() - t


def main(arch: str, size: int, bs: int, n: int, rounds: int, lr: float = 1e-3):
    trn, val = batches(n, bs, size), batches(max(1, n // 4), bs, size, seed=1)
    # bs=None: each item is already a batch, so both sides see the very same tensors in the same order
    dls = DataLoaders(DataLoader(trn, bs=None), DataLoader(val, bs=None))
    dls.vocab = list(range(10))
    exp = Experiment(name='bench', arch=arch, item_size=size, aug_size=size, bs=bs, pretrained=False)
    learn = learner(dls, exp, Weights(False), loss_func=CrossEntropyLossFlat())  # what Categorize gives a real run
    start = copy.deepcopy(learn.model.state_dict())
    print(f'{arch} at {size} px, bs {bs}, {n} training + {len(val)} validation batches, '
          f'{torch.get_num_threads()} threads', flush=True)
    ours, hand = [], []
    for r in range(rounds + 1):  # the first round warms both up and is not counted
        learn.model.load_state_dict(start)
        o = paddy_epoch(learn, lr)
        model = copy.deepcopy(learn.model)
        model.load_state_dict(start)
        h = hand_epoch(model, trn, val, lr)
        if r: ours.append(o); hand.append(h)
        print(f"  round {r}{' (warm-up)' if not r else ''}: paddy Learner {o:.2f} s, hand loop {h:.2f} s, "
              f"ratio {o / h:.3f}", flush=True)
    o, h = np.median(ours), np.median(hand)
    print(f'median of {rounds}: paddy Learner {o:.2f} s, hand loop {h:.2f} s per epoch; ratio {o / h:.3f} '
          '(target ≤ 1.10)')


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--arch', default='resnet18')
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--batches', type=int, default=24)
    ap.add_argument('--rounds', type=int, default=5)
    a = ap.parse_args()
    main(a.arch, a.size, a.bs, a.batches, a.rounds)
