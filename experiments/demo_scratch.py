"""Demo: a small resnet from random init, for contrast and for ensemble diversity."""
from demo_lite0 import *
arch = 'resnet18'
pretrained = False
item_size = 32             # digits are 8×8 at heart: 32 px is plenty and 4× cheaper
aug_size = 32
epochs = 5
bs = 64
lr = 0.01
