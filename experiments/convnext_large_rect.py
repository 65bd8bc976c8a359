"""convnext_large at the photos' shape: a member of the 8th-place ensemble."""
from convnext_small_rect import *
arch = 'convnext_large.fb_in22k'  # was convnext_large_in22k
aug_size = (320, 224)
accum = 2                  # two micro-batches of 32: effective batch 64 on a 16 GB card
