"""Learning curves: the epoch history that each run keeps (its .json when finished, `history.json` in its saved state
while stopped), drawn into one PNG, so that under- and over-fitting can be seen after the fact."""
import time
from pathlib import Path

from .errors import PaddyError
from .files import is_run_name, read_json, written_once
from .record import read_record
from .workspace import Workspace, here


def history(run: str, ws: Workspace) -> tuple[str, list[dict]]:
    "`run`'s experiment and epoch rows: a finished run's from its .json, a stopped one's from its saved state."
    if not is_run_name(run): raise PaddyError(f"'{run}' is not a run name: see `ls {ws.models}`")
    meta_file, state = ws.record(run), ws.state_info(run)
    if meta_file.is_file():
        rec = read_record(meta_file, f"restore it from a copy: its history is in {ws.state(run)} only while it runs")
        exp, rows = rec.name or run, rec.history
    elif state.is_file():
        exp = (read_json(state).get('experiment') or {}).get('name', run)
        h = ws.state_history(run)
        rows = read_json(h).get('epochs', []) if h.is_file() else []
    else: raise PaddyError(f"no run {run} in {ws.models}/ (finished or stopped): see `paddy results`")
    if not rows:
        raise PaddyError(f"{run} kept no epoch history (a run trained before paddy kept it, or stopped before its "
                         "first epoch ended): train it again to draw it")
    return exp, rows


def every_run(ws: Workspace) -> list[str]:
    "The runs in `models/` that have a history to draw: finished, then stopped."
    done = [f.stem for f in ws.records()]
    stopped = [r for r in ws.stopped() if ws.state_history(r).is_file()]
    return done + [r for r in stopped if r not in done]


def draw(runs: list[str], ws: Workspace | None = None, out: Path | None = None) -> Path:
    """Training and validation loss, and every metric, by epoch for each of `runs` (default: every run with a
    history), into one PNG: one colour per experiment, so its repeats show their spread; fine_tune's frozen epoch is
    marked with a hollow point. Returns the file."""
    import matplotlib
    matplotlib.use('Agg')  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    ws = ws or here()
    runs = runs or every_run(ws)
    if not runs: raise PaddyError(f"no runs in {ws.models}/: train one with `paddy train EXP`")
    got = [(r, *history(r, ws)) for r in runs]  # a damaged record is already one line (Damaged)
    metrics = sorted({k for _, _, rows in got for row in rows for k in row} - {'epoch', 'frozen', 'train_loss',
                                                                              'valid_loss', 'lr', 'seconds'})
    exps = sorted({e for _, e, _ in got})
    colours = dict(zip(exps, plt.get_cmap('tab10' if len(exps) <= 10 else 'tab20').colors * 3))
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(6 * (1 + len(metrics)), 4.5), squeeze=False)
    for run, exp, rows in got:
        c, ep = colours[exp], [row['epoch'] for row in rows]
        for ax, key, style in [(axes[0][0], 'train_loss', '-'), (axes[0][0], 'valid_loss', '--')] + [
                (axes[0][1 + i], m, '-') for i, m in enumerate(metrics)]:
            ys = [row.get(key) for row in rows]
            if all(y is None for y in ys): continue
            ax.plot(ep, [float('nan') if y is None else y for y in ys], style, color=c, marker='o', markersize=3,
                    label=f"{run} {key.replace('_loss', '')}" if ax is axes[0][0] else run)
            frozen = [(e, y) for e, y, row in zip(ep, ys, rows) if row.get('frozen') and y is not None]
            if frozen:
                ax.scatter(*zip(*frozen), s=40, facecolors='white', edgecolors=c, zorder=3)
    axes[0][0].set(xlabel='epoch (0: the frozen one, hollow)', ylabel='loss', title='training (solid), validation '
                   '(dashed)')
    for i, m in enumerate(metrics): axes[0][1 + i].set(xlabel='epoch', ylabel=m, title=m)
    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    out = out or ws.report(time.strftime('curves-%Y%m%d-%H%M%S'), 'png')
    with written_once(out, hint='pass --out OTHER.png') as tmp: fig.savefig(tmp, dpi=90, format='png')
    plt.close(fig)
    return out
