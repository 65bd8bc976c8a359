"""convnext_small, ImageNet-22k weights: the seed's best small model (0.0197 TTA error, 0.9827 on Kaggle)."""
arch = 'convnext_small.fb_in22k'  # was convnext_small_in22k in timm 0.6
resize = 'squish'
item_size = 480            # squish the 480×640 photos to a square before augmenting
aug_size = 224
min_scale = 0.75
epochs = 12
lr = 0.01
