"""Which models are best: a pivot over repeated runs, the error × time score, the better-and-faster subset, a plot."""
import time
from pathlib import Path

import pandas as pd

from . import gist, wandb_io
from .errors import PaddyError
from .files import never_overwrite, open_new, write_json
from .provenance import stamp
from .results import results
from .tables import table_text
from .workspace import Workspace, here

KEYS = ['dataset', 'family', 'experiment', 'arch', 'resize', 'size']


def pivot(df: pd.DataFrame, agg: str = 'mean') -> pd.DataFrame:
    """One row per dataset, family and experiment over its repeated runs: the `mean` of error, fit time and GPU memory,
    as the seed's notebook took them, or with `min` the best run whole (the lowest error, with its own fit time), so
    that every point is one a run reached."""
    if agg not in ('min', 'mean'): raise PaddyError(f"--agg {agg}: use mean or min")
    # a CV run's OOF error is not a single split's: the two are kept apart, and the experiment says which it is
    split = df.split.astype(object).where(df.split.notna(), 'single') if 'split' in df else 'single'
    df = df.assign(split=split)
    keys, cols = KEYS + ['recipe', 'split'], ['error_rate', 'tta_error_rate', 'fit_time', 'gpu_mem_gb']
    if agg == 'mean': vals = df.groupby(keys, dropna=False)[cols].mean()
    else: vals = (df.assign(ranked=ranked(df)).sort_values(['ranked', 'fit_time']).groupby(keys, dropna=False).head(1)
                  .set_index(keys)[cols])
    g = df.groupby(keys, dropna=False).run
    # the spread of repeats: the sample standard deviation of their ranked errors (none from one run)
    spread = df.assign(ranked=ranked(df)).groupby(keys, dropna=False).ranked.std().rename('spread')
    p = (g.count().rename('runs').to_frame().join(spread).join(vals).join(g.agg(' '.join).rename('run_names'))
         .reset_index())
    # runs of one experiment with different overrides are not repeats of each other: keep them apart, and say so
    several = p.groupby(['dataset', 'experiment']).recipe.transform('nunique') > 1
    p.loc[several, 'experiment'] = p.experiment[several] + '@' + p.recipe[several]
    cv = p.split != 'single'
    p.loc[cv, 'experiment'] = p.experiment[cv] + ' (' + p.split[cv] + ')'
    return p.drop(columns=['recipe', 'split'])


def ranked(df: pd.DataFrame) -> pd.Series:
    "The error a ranking goes by: TTA's, as every submission is made from TTA predictions, else the plain one."
    return df.tta_error_rate.astype(float).fillna(df.error_rate) if 'tta_error_rate' in df else df.error_rate


def score(p: pd.DataFrame, constant: float = 80) -> pd.Series:
    "`ranked` error × (fit_time + constant): the constant is a run's fixed cost, so speed counts but not alone."
    return ranked(p) * (p.fit_time + constant)


def better_and_faster(p: pd.DataFrame) -> pd.DataFrame:
    "Rows with both a lower `ranked` error and a shorter fit than their dataset's median, most accurate first."
    p = p.assign(ranked=ranked(p))
    med = p.groupby('dataset')[['ranked', 'fit_time']].transform('median')
    return p[(p.ranked < med.ranked) & (p.fit_time < med.fit_time)].sort_values('ranked').drop(columns='ranked')


def pred_files(run_names: str, ws: Workspace) -> list[Path]:
    "The prediction files of a pivot row's `run_names` (space-separated), those that are there."
    return [f for f in map(ws.probs, str(run_names).split()) if f.exists()]


def with_noise(p: pd.DataFrame, ws: Workspace | None = None) -> pd.DataFrame:
    """`p` with each experiment's TTA error interval (`lo`, `hi`) from a paired bootstrap over its dataset's shared
    validation images, and whether it is indistinguishable from that dataset's best (`same_as_best`); empty where its
    runs' predictions are not in `preds`."""
    from .compare import noise, right
    out = p.assign(lo=float('nan'), hi=float('nan'), same_as_best=None)
    for ds, g in p.groupby('dataset'):
        members = {i: right(pred_files(names, ws or here())) for i, names in g.run_names.items()}
        t = noise(members)
        for row in t.itertuples():
            out.loc[row.member, ['lo', 'hi', 'same_as_best']] = row.lo, row.hi, row.indistinguishable
    return out


def plot(p: pd.DataFrame, path: Path, runs: pd.DataFrame | None = None):
    """Fit time (log) against `ranked` error, one colour per family and one panel per dataset: a large named point per
    experiment with its interval where `with_noise` found one, and each of its runs small and faint, so the spread of
    repeats shows."""
    import matplotlib
    matplotlib.use('Agg')  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogFormatter
    datasets = sorted(p.dataset.unique())
    fams = sorted(p.family.unique())
    colours = dict(zip(fams, plt.get_cmap('tab10' if len(fams) <= 10 else 'tab20').colors))
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 5), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        d = p[p.dataset == ds].sort_values('fit_time')
        d = d.assign(err=ranked(d))
        if runs is not None:
            r = runs[runs.dataset == ds]
            ax.scatter(r.fit_time, ranked(r), s=12, alpha=0.35, color=[colours.get(f, 'grey') for f in r.family])
        for fam, g in d.groupby('family'):
            ax.scatter(g.fit_time, g.err, s=60, color=colours[fam], label=fam, edgecolor='black', linewidth=0.5)
            if 'lo' in g and g.lo.notna().any():  # the bootstrap's 95% interval of each experiment's error
                b = g[g.lo.notna()]
                ax.vlines(b.fit_time, b.lo.astype(float), b.hi.astype(float), color=colours[fam], alpha=0.6)
        for i, (_, row) in enumerate(d.iterrows()):  # alternate above and below, so neighbours' names do not overlap
            ax.annotate(row.experiment, (row.fit_time, row.err), fontsize=7, textcoords='offset points',
                        xytext=(5, 6 if i % 2 == 0 else -11))
        ax.set_xscale('log'); ax.margins(0.08)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f'{x:g}'))  # 300, not 3×10²
        # minor ticks labelled only where the axis spans under a decade, else their labels run together ("708090")
        ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
        ax.set(xlabel='fit time (s, log scale)', ylabel='TTA error rate (else plain), 95% interval', title=ds)
        ax.grid(alpha=0.3)
        ax.legend(title='family', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def ranking(df: pd.DataFrame, by: str = 'score', constant: float = 80, agg: str = 'mean',
            ws: Workspace | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The experiments of runs `df`, one row each (`pivot`) with their `score` and their intervals (`with_noise`),
    best first `by` score (error × time) or by `error` (TTA's, then the faster); and those better and faster than the
    median. What `paddy report` prints and the playbook ranks its screening by."""
    p = pivot(df, agg)
    p['score'] = score(p, constant)
    order = ['score'] if by == 'score' else ['ranked', 'fit_time']
    p = with_noise(p.assign(ranked=ranked(p)).sort_values(order).drop(columns='ranked').reset_index(drop=True), ws)
    return p, better_and_faster(p)


def report(df: pd.DataFrame, dataset: str | None = None, top: int = 15, constant: float = 80, agg: str = 'mean',
           name: str | None = None, sources: dict | None = None, ws: Workspace | None = None) -> dict:
    """Print the pivot, the top `top` by score (TTA error × time) with each one's interval and whether it is within
    noise of the best, and the better-and-faster subset; write reports/<name>.{png,csv,json}."""
    if dataset is not None:
        if dataset not in set(df.dataset):
            raise PaddyError(f"no runs on dataset '{dataset}': there are {', '.join(sorted(set(df.dataset)))}")
        df = df[df.dataset == dataset]
    df = df.dropna(subset=['error_rate', 'fit_time'])
    if df.empty: raise PaddyError("no run has both an error rate and a fit time to rank")
    ws = ws or here()
    p, fast = ranking(df, 'score', constant, agg, ws)
    name = name or time.strftime(f'report-{dataset or "all"}-%Y%m%d-%H%M%S')
    files = {k: ws.report(name, k) for k in ('png', 'csv', 'json')}
    never_overwrite(*files.values(), hint='pass --name OTHER')
    print(f'{len(df)} runs of {len(p)} experiments; score = TTA error (else error_rate) × (fit_time + '
          f'{constant:g}), {agg} over repeats, spread: their standard deviation; lo–hi: the 95% interval of the '
          'TTA error over the shared validation images, same_as_best: within that noise of the best\n')
    print(table_text(p.drop(columns='run_names')), '\n')
    shown = p.head(top)[KEYS[1:3] + ["runs", "error_rate", "tta_error_rate", "spread", "lo", "hi",
                                     "same_as_best", "fit_time", "score"]]
    print(f'top {top} by score:\n{table_text(shown)}\n')
    print('better and faster than the median:\n'
          + (table_text(fast[KEYS[1:3] + ['error_rate', 'fit_time']]) if len(fast) else '(none)'))
    for flag, why in (('underfits', 'training loss above validation loss at the end: more epochs'),
                      ('overfits', 'validation loss rose over the last two epochs')):
        runs = df.run[df.fit == flag].tolist() if 'fit' in df else []
        if runs: print(f"\n{flag} ({why}): {', '.join(runs)}")
    ws.reports.mkdir(parents=True, exist_ok=True)
    plot(p, files['png'], df)
    with open_new(files['csv']) as f: p.to_csv(f, index=False)
    write_json(files['json'],
               dict(name=name, dataset=dataset, top=top, score_constant=constant, agg=agg, runs=df.run.tolist(),
                                   sources=sources or {}, files={k: str(v) for k, v in files.items()}, **stamp()))
    print(f'\nwrote {files["png"]}, {files["csv"]}')
    return dict(pivot=p, top=p.head(top), better_and_faster=fast, files=files)


def collect(ws: Workspace | None = None, wandb: str | None = None) -> tuple[pd.DataFrame, dict]:
    "This project's runs, plus a W&B sweep's when `wandb` names one; and where they came from."
    frames, sources, ws = [], {}, ws or here()
    if wandb:
        frames.append(wandb_io.sweep_results(wandb)); sources['wandb'] = wandb
    if ws.models.is_dir() or not frames: frames.append(results(ws)); sources['models'] = str(ws.models)
    return pd.concat(frames, ignore_index=True), sources


def versus(df: pd.DataFrame, a: str, b: str, dataset: str | None = None, ws: Workspace | None = None) -> dict:
    """`paddy report --vs A B`: experiment `a`'s TTA error less `b`'s on the validation images they share, its 95%
    interval, and on how many images each is right where the other is wrong."""
    from .compare import paired, right
    if dataset is not None: df = df[df.dataset == dataset]
    p = pivot(df.dropna(subset=['error_rate']))
    files, ws = {}, ws or here()
    for n in (a, b):
        rows = p[p.experiment == n]
        if rows.empty: raise PaddyError(f"--vs: no experiment '{n}' among the runs; there are "
                                        f"{', '.join(sorted(set(p.experiment)))}")
        if len(rows) > 1: raise PaddyError(f"--vs: '{n}' has runs on {len(rows)} datasets: pass --dataset")
        files[n] = pred_files(rows.run_names.iloc[0], ws)
        if not files[n]:
            raise PaddyError(f"--vs: {n}'s runs have no predictions in {ws.preds}/: run `paddy predict RUN`")
    v = paired(right(files[a]), right(files[b]))
    verdict = ('indistinguishable: the interval holds 0' if v['indistinguishable'] else
               f"{a if v['diff'] < 0 else b} is better beyond the noise")
    print(f"{a} − {b}: TTA error {v['diff']:+.4f}, 95% interval [{v['lo']:+.4f}, {v['hi']:+.4f}], over the "
          f"{v['images']} validation images both hold; {a} alone right on {v['a_only']}, {b} alone right on "
          f"{v['b_only']}; {verdict}")
    return v


def publish(ws: Workspace | None = None, wandb: str | None = None, to_gist: bool = False, **kwargs) -> dict:
    "`report` the runs in `ws`'s models (and a W&B sweep's); with `to_gist`, publish its CSV as a secret gist."
    if to_gist: gist.token()  # fail before any work
    df, sources = collect(ws, wandb)
    r = report(df, sources=sources, ws=ws, **kwargs)
    if to_gist:
        csv = r['files']['csv']
        print(f"published {csv} as {gist.publish([csv], 'paddy report ' + csv.stem)}")
    return r
