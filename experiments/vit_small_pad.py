"""vit_small, zero-padded to a square."""
from vit_small_squish import *
resize = 'pad'
