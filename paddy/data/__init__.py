"""Stage 1, the data: the competition folder, its size census, a resized copy, the item cache, fastai DataLoaders."""
from .folder import (COMPETITION, HOW_TO_GET, LAYOUT, find_data, has_layout, read_train, split_seed, tst_items,
                     valid_ids)
from .loaders import batch_tfms, dataloaders, item, num_workers
