"""Screening only, as Road to the Top's first notebook did: the seed's families on a 256-px copy, ranked by error and
time, and the greedy ensemble of the screening runs themselves (top = 0: no final sweep)."""
candidates = ['convnext_small_squish', 'vit_small_squish', 'swin_small_squish']
screen_size = 256
screen_sets = ['item_size=256', 'aug_size=224']
screen_epochs = 3
top = 0
select = 'greedy'
