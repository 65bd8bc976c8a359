"""Demo sweep: a third family on the digits, convnext_atto from random init (no offline weights for it)."""
from demo_scratch import *
arch = 'convnext_atto'
lr = 0.004                 # AdamW on a ConvNeXt from scratch wants a lower peak than the resnet
