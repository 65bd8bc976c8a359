"""swinv2_base with 12×12 windows: pretrained at 192, so it trains at 192."""
arch = 'swinv2_base_window12_192.ms_in22k'  # was swinv2_base_window12_192_22k
resize = 'squish'
item_size = 480
aug_size = 192
epochs = 12
lr = 0.01
