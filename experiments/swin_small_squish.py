"""swin_small with 7×7 windows at 224."""
arch = 'swin_small_patch4_window7_224'
resize = 'squish'
item_size = 480
aug_size = 224
epochs = 12
lr = 0.01
