"""vit_large at 224: a member of the 8th-place ensemble."""
from vit_small_squish import *
arch = 'vit_large_patch16_224'
accum = 2                  # effective batch 64 on a 16 GB card
