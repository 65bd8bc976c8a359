"""Demo: a small resnet from random init, for contrast and for ensemble diversity."""
from demo_lite0 import *
arch = 'resnet18'
pretrained = False
item_size = 32
aug_size = 32
epochs = 5
