"""swinv2_large at 192: a member of the 8th-place ensemble."""
from swinv2_base_squish import *
arch = 'swinv2_large_window12_192.ms_in22k'  # was swinv2_large_window12_192_22k
accum = 2                  # effective batch 64 on a 16 GB card
