"""Ensemble selection on the shared validation split: greedy forward selection with replacement (Caruana, 2004)."""
import numpy as np


def _error(probs: np.ndarray, targets: np.ndarray) -> float:
    return float((probs.argmax(1) != targets).mean())


def _nll(probs: np.ndarray, targets: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-12, None)).mean())


def greedy(valid: list[np.ndarray], targets: np.ndarray, steps: int | None = None) -> tuple[np.ndarray, list[dict]]:
    """Integer weights for the members whose `valid` probabilities best average to `targets`, and each step's record.
    Each step adds the member that most lowers the error of the running mean (a member may come back). A validation
    set is small, so ties go toward fewer members: first to one already in, then to the lower log loss; and of all
    the steps, the earliest with the lowest error wins. It is never worse on validation than the plain mean: where
    the mean is better, the mean is the answer."""
    n = len(valid)
    steps = steps or 2 * n
    counts, total, history = np.zeros(n, int), np.zeros_like(valid[0], dtype=np.float64), []
    for step in range(1, steps + 1):
        def score(i):
            p = (total + valid[i]) / step
            return _error(p, targets), counts[i] == 0, _nll(p, targets)  # lower is better, in this order
        best = min(range(n), key=score)
        counts[best] += 1
        total += valid[best]
        history.append(dict(step=step, added=best, error=_error(total / step, targets), members=int((counts > 0).sum()),
                            weights=counts.copy()))
    chosen = min(history, key=lambda h: (h['error'], h['step']))
    mean = _error(np.mean(valid, 0), targets)
    if mean < chosen['error']:
        return np.ones(n,
                       int), history + [dict(step='mean', added=None, error=mean, members=n, weights=np.ones(n, int))]
    return chosen['weights'], history


def logloss(valid: list[np.ndarray], targets: np.ndarray) -> tuple[np.ndarray, dict]:
    """Weights, summing to 1, whose mean of the `valid` probabilities has the lowest log loss on `targets`, and the
    fit's record: softmax-parameterised, fitted by L-BFGS from equal weights and kept only where it lowers the loss, so
    it is never worse in log loss than the plain mean. With out-of-fold probabilities every image is scored by models
    that never trained on it, so the weights are not fitted to the members' own training images."""
    from scipy.optimize import minimize
    from scipy.special import softmax
    picked = np.stack([v[np.arange(len(targets)), targets] for v in valid], 1).astype(np.float64)  # (images, members)

    def nll(z):
        w = softmax(z)
        p = np.clip(picked @ w, 1e-12, None)
        grad_w = -(picked / p[:, None]).mean(0)
        return float(-np.log(p).mean()), w * (grad_w - w @ grad_w)  # the chain rule through the softmax

    z0 = np.zeros(len(valid))
    fit = minimize(nll, z0, jac=True, method='L-BFGS-B')
    mean = nll(z0)[0]
    w = softmax(fit.x) if fit.fun < mean else np.full(len(valid), 1 / len(valid))
    return w, dict(mean_logloss=mean, logloss=min(float(fit.fun), mean), iterations=int(fit.nit))
