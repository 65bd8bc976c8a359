"""convnext_small at the photos' own shape: no squish, crop or pad."""
from convnext_small_squish import *
item_size = (640, 480)     # (rows, cols): the portrait photos as they are
aug_size = (288, 224)      # portrait too; convnext takes any size
