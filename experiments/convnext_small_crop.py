"""convnext_small, centre-cropped to a square: loses the ends of the leaf."""
from convnext_small_squish import *
resize = 'crop'
