"""fastai DataLoaders for an experiment: cached, item-transformed uint8 images in, fastai's batch augmentation on the
device."""

import numpy as np
import pandas as pd

from .. import environ
from ..spec import Experiment, final_size, hw
from . import cache as C


def num_workers() -> int: return environ.workers()


def item(exp: Experiment) -> C.Item:
    return C.Item(exp.resize, hw(exp.item_size))


def batch_tfms(exp: Experiment):
    """fastai's `aug_transforms` (flip, warp, rotate, zoom, lighting) at the image's size, then `ScaledCrop` to the
    final size, whose plain view matches the training views' scale: progressive resizing sets smaller sizes before."""
    from fastai.vision.all import aug_transforms
    from .tfms import MAX_ZOOM, P_AFFINE, ScaledCrop, train_scale
    crop = ScaledCrop(hw(final_size(exp)), min_scale=exp.min_scale, valid_scale=train_scale(exp.min_scale))
    return aug_transforms(do_flip=exp.flip, max_zoom=MAX_ZOOM, p_affine=P_AFFINE) + [crop]


def dataloaders(df: pd.DataFrame, exp: Experiment, valid: list[str], bs: int, device=None, cache: bool = True,
                data=None, resident: bool | None = None, **kwargs):
    """fastai DataLoaders over `read_train`'s `df`, validating on `valid` ids; labels come from the folder name. With
    `cache` (and PADDY_ITEM_CACHE not off), the item-transformed images of `df` are built once and read back every
    epoch. `resident` holds the cached training images on the device and batches them there: None does so on CUDA when
    they fit (`device.SHARE` of its free memory), True on any device, False never. `kwargs` go to fastai's
    `DataLoader`, e.g. `pin_memory`."""
    from fastai.vision.all import (CategoryBlock, DataBlock, IndexSplitter, IntToFloatTensor, TransformBlock,
                                   parent_label)
    from .device import AsyncDL, resident as resident_dl
    from .tfms import CachedImage, CropTensor
    it, where = item(exp), C.root()
    store = C.build(df.path.tolist(), it, where, num_workers(),
                    str(data) if data else None) if cache and where else None
    idx = np.flatnonzero(df.image_id.isin(set(valid)).values).tolist()
    # uint8 through collate and onto the device; IntToFloatTensor makes floats there, before the batch augmentation
    images = TransformBlock(type_tfms=CachedImage(it, store), batch_tfms=IntToFloatTensor)
    ys = dict(blocks=(images, CategoryBlock), get_y=parent_label)
    if exp.variety:  # the disease from the folder, the variety from train.csv, as two targets of one input
        from .labels import Lookup
        ys = dict(blocks=(images, CategoryBlock, CategoryBlock), n_inp=1,
                  get_y=[parent_label, Lookup(dict(zip(df.path, df.variety)))])
    dblock = DataBlock(**ys, splitter=IndexSplitter(idx),
                       item_tfms=[CropTensor(it.size)] if exp.resize == 'crop' else [],
                       batch_tfms=batch_tfms(exp))
    dls = dblock.dataloaders(df.path.tolist(), bs=bs, num_workers=num_workers(), device=device,
                             **{'dl_type': AsyncDL, **kwargs})
    # for the run's metadata; an exported Learner keeps only the transforms
    dls.item_cache, dls.item_cache_where, dls.item_cache_why = store, 'host' if store else None, None
    on = dls.train.device
    if store is not None and resident is not False and (resident or (on is not None and on.type == 'cuda')):
        dls.loaders[0], dls.item_cache_where, dls.item_cache_why = resident_dl(dls.train, store, on or 'cpu')
    return dls
