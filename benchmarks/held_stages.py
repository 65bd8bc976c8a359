"""What `freeze_stride` buys a training step: EfficientNet-Lite0's images a second at each size with its pretrained
stages held up to each stride (paddy.train.held picks the parameters), on random batches, in fp32 eager, on this
machine's CPU or GPU.

usage: python benchmarks/held_stages.py [--arch tf_efficientnet_lite0] [--sizes 96 192] [--strides 0 4 8 16] [--bs 32]
"""
import argparse, time

import torch
import timm

from paddy.train.held import held_params


def img_per_s(model, opt, size: int, bs: int, steps: int, warmup: int = 2) -> float:
    dev = next(model.parameters()).device
    x, y = torch.randn(bs, 3, size, size, device=dev), torch.randint(0, 9, (bs,), device=dev)
    for i in range(warmup + steps):
        if i == warmup:
            if dev.type == 'cuda': torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if dev.type == 'cuda': torch.cuda.synchronize()
    return bs * steps / (time.perf_counter() - t0)


def main(a):
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    model = timm.create_model(a.arch, pretrained=False, num_classes=9).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    print(f'{a.arch}, bs {a.bs}, {a.steps} timed steps after 2, {dev}, {torch.get_num_threads()} threads')
    print('| size | freeze_stride | held parameters | img/s | vs none |\n| --- | --- | --- | --- | --- |')
    for size in a.sizes:
        base = None
        for stride in a.strides:
            for p in model.parameters(): p.requires_grad_(True)
            held = held_params(model, stride, a.arch) if stride else []
            for p in held: p.requires_grad_(False)
            ips = img_per_s(model, opt, size, a.bs, a.steps)
            base = base or ips
            n = sum(p.numel() for p in held)
            print(f'| {size} | {stride} | {n:,} | {ips:.1f} | {ips / base:.2f} |', flush=True)


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--arch', default='tf_efficientnet_lite0')
    ap.add_argument('--sizes', type=int, nargs='+', default=[96, 192])
    ap.add_argument('--strides', type=int, nargs='+', default=[0, 4, 8, 16])
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--steps', type=int, default=5)
    main(ap.parse_args())
