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
