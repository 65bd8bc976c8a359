"""Submit a linted CSV, log where it came from, and join the log with the leaderboard scores."""
import sys, time
from pathlib import Path

import pandas as pd

from ..data import COMPETITION, find_data
from ..errors import PaddyError
from ..files import append_row, read_json, sha256
from . import client
from ..workspace import here
from .lint import check_submission

COLUMNS = ['time', 'competition', 'file', 'sha256', 'message', 'runs', 'weights', 'method', 'valid_error', 'ref',
           'kaggle_message']


def provenance(sub: Path) -> dict:
    "What `paddy ensemble` recorded beside `sub`, if it wrote it and the file has not changed since."
    meta_path = sub.with_suffix('.json')
    if not meta_path.is_file(): return {}
    meta = read_json(meta_path, f"move it aside: {sub} can still be submitted, without its runs in the log")
    if meta.get('sha256') != sha256(sub):
        print(f"warning: {sub} changed after {meta_path} was written, so its runs are not logged", file=sys.stderr)
        return {}
    return meta


def read_log(log: Path | None = None) -> pd.DataFrame:
    log = log or here().submitted_log
    return pd.read_csv(log, dtype=str, keep_default_na=False) if log.is_file() else pd.DataFrame(columns=COLUMNS)


def upload(sub: Path, message: str, comp: str = COMPETITION, data=None, log: Path | None = None,
           again: bool = False) -> dict:
    "Lint `sub`, upload it with `message`, and append what it was made from to `log` (submissions/log.csv)."
    sub, log = Path(sub), log or here().submitted_log
    if not message.strip():
        raise PaddyError("give a message with -m: it is how you tell submissions apart on the leaderboard")
    meta = provenance(sub) if sub.is_file() else {}
    n = check_submission(sub, find_data(data, meta.get('data')))  # by default, where the ensemble was made
    digest = sha256(sub)
    earlier = read_log(log).query('sha256 == @digest and competition == @comp')
    if len(earlier) and not again:
        t, m = earlier.iloc[-1][['time', 'message']]
        raise PaddyError(f"{sub} was already submitted to {comp} at {t} ({m!r}): pass --again to spend another "
                         "submission on it")
    print(f'{sub}: {n} rows, ids and labels check out; submitting to {comp}')
    res = client.submit(sub, message, comp)
    ve = (meta.get('valid_error') or {}).get('ensemble')
    row = dict(time=time.strftime('%Y-%m-%dT%H:%M:%S%z'), competition=comp, file=str(sub), sha256=digest,
               message=message,
               runs=';'.join(meta.get('runs', [])), weights=';'.join(f'{w:.4g}' for w in meta.get('weights', [])),
               method=meta.get('method', ''), valid_error='' if ve is None else f'{ve:.5f}', ref=res['ref'],
               kaggle_message=res['message'])
    append_row(log, COLUMNS, row)
    print(f"{res['message'] or 'submitted'} (ref {res['ref']}); logged in {log}")
    return row


def _score(s) -> float | None:
    try: return float(s)
    except (TypeError, ValueError): return None


def submissions(comp: str = COMPETITION, log: Path | None = None) -> pd.DataFrame:
    """The log joined with your leaderboard scores by submission ref; the log alone, with a warning, when Kaggle is out
    of reach."""
    log = log or here().submitted_log
    logged = read_log(log)
    logged = logged[logged.competition == comp] if len(logged) else logged
    try: remote = client.scores(comp)
    except PaddyError as e:
        if not len(logged):
            raise PaddyError(f"nothing to show: {log} has no submissions to {comp}, and the scores could not be "
                             f"fetched ({e})") from None
        print(f"warning: the scores could not be fetched, so this is {log} alone: {e}", file=sys.stderr)
        remote = None
    cols = ['time', 'file', 'message', 'runs', 'valid_error', 'public_score', 'private_score', 'status']
    out = logged.assign(public_score=None, private_score=None,
                        status='not fetched' if remote is None else 'not on Kaggle')
    if remote:
        by_ref = {str(r['ref']): r for r in remote}
        for k, ref in zip(out.index, out.ref):
            r = by_ref.pop(str(ref), None)
            if r:
                out.loc[k, ['public_score', 'private_score',
                            'status']] = [r['public_score'], r['private_score'], r['status']]
        # submissions made outside paddy still belong in the table, without the provenance the log would give them
        extra = pd.DataFrame([dict(time=r['date'].strftime('%Y-%m-%dT%H:%M:%S%z') if r['date'] else '', file=r['file']
                                   or '',
                                   message=r['description'] or '', runs='(not in the log)', valid_error='',
                                   public_score=r['public_score'],
                                   private_score=r['private_score'], status=r['status']) for r in by_ref.values()],
                             columns=cols)
        out = pd.concat([out[cols], extra], ignore_index=True) if len(extra) else out
    out = out[cols].copy()
    for c in ('valid_error', 'public_score', 'private_score'): out[c] = pd.to_numeric(out[c].map(_score))
    return out.sort_values('time', kind='stable').reset_index(drop=True)
