"""What `freeze_stride` buys a training step: an arch's images a second at each size with its pretrained stages held up
to each stride, timed by the playbook's own probe (paddy.train.probe: random batches, fp32 eager, the fastest of the
timed steps) on this machine's CPU or GPU; paddy.train.held picks the parameters.

usage: python benchmarks/held_stages.py [--arch tf_efficientnet_lite0] [--sizes 96 192] [--strides 0 4 8 16] [--bs 32]
"""
import argparse

import timm
import torch

from paddy.train.held import held_params
from paddy.train.probe import step_images_per_s


def main(a):
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    with torch.device('meta'): shape = timm.create_model(a.arch, pretrained=False, num_classes=0)
    print(f'{a.arch}, bs {a.bs}, the fastest of {a.steps} timed steps after 2, {dev}, {torch.get_num_threads()} '
          'threads')
    print('| size | freeze_stride | held parameters | img/s | vs none |\n| --- | --- | --- | --- | --- |')
    for size in a.sizes:
        base = None
        for stride in a.strides:
            n = sum(p.numel() for p in held_params(shape, stride, a.arch)) if stride else 0
            ips = step_images_per_s(a.arch, stride, a.bs, (size, size), a.steps)
            base = base or ips
            print(f'| {size} | {stride} | {n:,} | {ips:.1f} | {ips / base:.2f} |', flush=True)


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--arch', default='tf_efficientnet_lite0')
    ap.add_argument('--sizes', type=int, nargs='+', default=[96, 192])
    ap.add_argument('--strides', type=int, nargs='+', default=[0, 4, 8, 16])
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--steps', type=int, default=5)
    main(ap.parse_args())
