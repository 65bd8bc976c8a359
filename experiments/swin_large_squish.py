"""swin_large at 224: a member of the 8th-place ensemble."""
from swin_small_squish import *
arch = 'swin_large_patch4_window7_224'
accum = 2                  # effective batch 64 on a 16 GB card
