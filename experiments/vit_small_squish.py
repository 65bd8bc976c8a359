"""vit_small: a fixed 224×224 input, so only the item transform varies."""
arch = 'vit_small_patch16_224'
resize = 'squish'
item_size = 480
aug_size = 224             # the position embeddings are fixed at 224
epochs = 12
lr = 0.01
