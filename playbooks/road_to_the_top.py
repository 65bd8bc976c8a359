"""For a GPU: the seed's families and resize methods screened on a 256-px copy, the top four trained at full size
(each experiment's own sizes) for 12 epochs with an EMA, as 5-fold CV runs, and ensembled by greedy selection on their
out-of-fold predictions."""
candidates = [
    'convnext_small_squish', 'convnext_small_crop', 'convnext_small_pad',
    'vit_small_squish', 'vit_small_pad',
    'swin_small_squish', ('swinv2_base_squish', ['aug_size=192']),  # swinv2 takes only 192×192
]
screen_size = 256
screen_sets = ['item_size=256', 'aug_size=224']
screen_epochs = 3
top = 4
final_sets = ['ema=0.999']
final_epochs = 12
folds = 5
select = 'greedy'
