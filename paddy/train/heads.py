"""Road to the Top part 4's disease + variety model: one body, one linear layer for both heads' logits, a summed loss.
fastai pickles these with an exported Learner, so they are plain classes here, not lambdas."""
import torch
import torch.nn.functional as F


class TwoHeads:
    """Cross-entropy of the disease logits (the first `n` outputs) plus that of the variety logits (the rest), each
    with `label_smoothing`; `reduction` as torch's, which fastai's `NoneReduce` sets while mixing."""
    def __init__(self, n: int, label_smoothing: float = 0.0):
        self.n, self.eps, self.reduction = n, label_smoothing, 'mean'
    def __call__(self, out, disease, variety):
        kw = dict(label_smoothing=self.eps, reduction=self.reduction)
        return F.cross_entropy(out[:, :self.n], disease, **kw) + F.cross_entropy(out[:, self.n:], variety, **kw)
    def activation(self, out): return torch.cat([out[:, :self.n].softmax(1), out[:, self.n:].softmax(1)], 1)
    def decodes(self, out): return out[:, :self.n].argmax(1)


class HeadError:
    "A fastai metric: the error rate of the outputs `lo:hi` against target number `target`."
    def __init__(self, name: str, lo: int, hi: int,
                 target: int): self.__name__, self.lo, self.hi, self.target = name, lo, hi, target
    def __call__(self, out, *ys): return (out[:, self.lo:self.hi].argmax(1) != ys[self.target]).float().mean()


def two_heads(dls, label_smoothing: float = 0.0) -> dict:
    "What `vision_learner` takes for the two heads, from the DataLoaders' two vocabularies."
    nd, nv = len(dls.vocab[0]), len(dls.vocab[1])
    return dict(n_out=nd + nv, loss_func=TwoHeads(nd, label_smoothing),
                metrics=[HeadError('error_rate', 0, nd, 0), HeadError('variety_error_rate', nd, nd + nv, 1)])
