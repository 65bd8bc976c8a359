"""convnext_small, zero-padded to a square: keeps the whole photo undistorted."""
from convnext_small_squish import *
resize = 'pad'
