"""Label smoothing: torch's own `label_smoothing` in each head's cross-entropy, so it is applied once, in the loss,
whether or not the batch is mixed (mixing weighs two such losses; it never smooths the targets itself)."""
from .heads import two_heads


def loss(dls, exp) -> dict:
    "What `vision_learner` takes for `exp`'s heads and smoothing: nothing for one plain head, fastai's default loss."
    from fastai.losses import CrossEntropyLossFlat
    if exp.variety: return two_heads(dls, exp.label_smoothing)
    return dict(loss_func=CrossEntropyLossFlat(label_smoothing=exp.label_smoothing)) if exp.label_smoothing else {}
