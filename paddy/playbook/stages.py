"""The seven stages of a playbook, each a function of the run so far that returns what it records: check the data, make
the small copy, screen the candidates, rank them, train the top ones at full size, ensemble them, check (and submit)
the submission. Training goes through `paddy sweep`, which never retrains a finished run."""
import time
from dataclasses import replace
from pathlib import Path

from ..data import num_workers, read_train, tst_items
from ..data.resize import resize
from ..data.verify import check as check_data
from ..ensemble import ensemble as make_ensemble
from ..errors import PaddyError
from ..files import read_json
from ..report import better_and_faster, pivot, plot, score
from ..results import metas, results
from ..spec import FIELDS, load as load_experiment
from ..sweep import devices, finished, sweep
from . import plan as P
from .book import Playbook, label


class Run:
    "A playbook run's context: the book, where it writes, the data, the budget and the clock of this session."
    def __init__(self, book: Playbook, name: str, folder: Path, data: Path, hours: float | None, gpus=None,
                 spent: float = 0.0, models: Path = Path('models')):
        self.book, self.name, self.folder, self.data, self.hours, self.gpus = book, name, folder, data, hours, gpus
        self.spent, self.t0, self.models = spent, time.time(), models

    def left(self) -> float:
        "Seconds of the budget left: the hours less the finished stages of earlier sessions and this session's time."
        return float('inf') if self.hours is None else self.hours * 3600 - self.spent - (time.time() - self.t0)

    def sweep_name(self, stage: str) -> str: return f'{self.name}-{stage}'


def spec_file(exp, folder: Path) -> Path:
    "`exp` as an experiment file of plain assignments, every field written out: what the sweep trains, declared."
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / f'{exp.name}.py'
    body = [f'"""Written by paddy playbook: {exp.name}, every field resolved."""']
    body += [f'{k} = {getattr(exp, k)!r}' for k in FIELDS]
    f.write_text('\n'.join(body) + '\n')
    return f


def experiments(r: Run, stage: str, labels: list[str] | None = None) -> list:
    "The candidates (or those of `labels`) as experiments of `stage` (screen or final), named by their labels."
    b, out = r.book, []
    for exp, sets in b.candidate_sets():
        lab = label(exp, sets)
        if labels is not None and lab not in labels: continue
        extra = [*b.screen_sets, f'epochs={b.screen_epochs}'] if stage == 'screen' else [*b.final_sets,
                                                                                         f'epochs={b.final_epochs}']
        out.append(replace(load_experiment(exp, [*extra, *sets]), name=lab))  # the candidate's own sets win
    return out if labels is None else sorted(out, key=lambda e: labels.index(e.name))


def check(r: Run) -> dict:
    report = check_data(r.data)
    (r.folder / 'check.txt').write_text(report + '\n')
    print(report)
    return dict(report='check.txt')


def shrink(r: Run) -> dict:
    "The small copy, under data/, reused when it exists (`paddy resize` resumes and checks it)."
    if not r.book.screen_size: return dict(data=str(r.data))
    dest = Path('data') / f'{r.data.name}-{r.book.screen_size}'
    return dict(data=str(resize(r.data, dest, r.book.screen_size, workers=num_workers()).resolve()))


def counts(data: Path) -> tuple[int, int]:
    return len(read_train(data)), len(tst_items(data)[0])


def screen_estimates(r: Run, data: Path) -> list[P.Estimate]:
    """Each screening run's time, from the rate of any run measured before (else a prior for this device), and the
    device's start-up per run."""
    n, n_test = counts(data)
    px, source = measured_rate(r.models)
    return [P.estimate(e, e.name, n, n_test, px, source, overhead=P.PRIOR_STARTUP_S[device()],
                       pretrained=e.pretrained is not False) for e in experiments(r, 'screen')]


def device() -> str:
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'



def measured_rate(models: Path) -> tuple[float, str]:
    "The median pixels a second of the finished runs on record, else the prior for this device."
    done = [m for _, m in metas(models, warn=False) if m.get('img_per_s') and m.get('experiment')]
    if done:
        rates = sorted(P.rate(m) for m in done)
        return rates[len(rates) // 2], f'the median rate of {len(rates)} finished runs'
    dev = device()
    return P.PRIOR_PX_PER_S[dev], f'a prior for {dev}: no run measured yet'


def affordable(r: Run, data: Path) -> list[P.Estimate]:
    "The screening runs' estimates; raise, saying how much it needs, when the time left cannot hold them."
    est = screen_estimates(r, data)
    need = sum(e.seconds for e in est) / max(1, len(devices(r.gpus)))
    if need > r.left():
        raise PaddyError(f"--hours {r.hours:g} leaves {P.duration(r.left())}, and the screening alone needs about "
                         f"{P.duration(need)} ({len(est)} run{'s' * (len(est) != 1)}, from {est[0].source}): give "
                         f"--hours {(need + r.spent) / 3600 * 1.2:.2g} or more, or fewer candidates")
    return est


def screen(r: Run, data: Path) -> dict:
    est = affordable(r, data)
    specs = [spec_file(e, r.folder / 'specs' / 'screen') for e in experiments(r, 'screen')]
    t0, before = time.time(), len(finished(r.sweep_name('screen'), r.models))
    done = sweep([str(s) for s in specs], gpus=r.gpus, data=str(data), name=r.sweep_name('screen'),
                 hours=r.left() / 3600 if r.hours else None, models=r.models)
    runs = {m['experiment']['name']: m['run'] for m in done.values()}
    # a run's wall time beyond its fit and TTA (start-up, the item cache): what the final estimates add to each run
    wall = (time.time() - t0) / max(1, len(done) - before) if len(done) > before else None
    return dict(runs=runs, estimate=sum(e.seconds for e in est), wall_per_run=wall, data=str(data))


def rank(r: Run) -> dict:
    "The report's pivot of the screening runs, its score, and the better-and-faster subset; the top ones go on."
    df = results(r.models)
    df = df[df.sweep.astype(str).str.startswith(r.sweep_name('screen') + '/')].dropna(subset=['error_rate'])
    if df.empty: raise PaddyError(f"no screening run of {r.name} finished: see sweeps/{r.sweep_name('screen')}/")
    p = pivot(df)
    p['score'] = score(p)
    p = p.sort_values('score').reset_index(drop=True)
    fast = better_and_faster(p)
    p.to_csv(r.folder / 'rank.csv', index=False)
    plot(p, r.folder / 'rank.png', df)
    chosen = p.experiment.head(r.book.top).tolist()
    print(p[['experiment', 'runs', 'error_rate', 'fit_time', 'score']].to_string(index=False, float_format='%.4f'))
    print(f"taking forward the top {len(chosen)} by score: {', '.join(chosen)}")
    return dict(chosen=chosen, better_and_faster=fast.experiment.tolist(), table='rank.csv', plot='rank.png')


def final_plan(r: Run, chosen: list[str], screened: dict,
               seconds_left: float | None = None) -> tuple[list[P.Estimate], list[P.Estimate]]:
    """Each chosen candidate's final runs, estimated from its own screening run, and those that fit `seconds_left`
    (default: the time left now)."""
    n, n_test = counts(r.data)
    est = []
    for e in experiments(r, 'final', chosen):
        run = (screened.get('runs') or {}).get(e.name)
        meta = read_json(r.models / f'{run}.json') if run and (r.models / f'{run}.json').exists() else None
        if meta:
            px, source, wall = P.rate(meta), f"its screening run {run}", screened.get('wall_per_run')
            shot = experiments(r, 'screen', [e.name])[0]
            overhead = max(0.0, wall - meta['fit_time'] - P.tta(shot, meta['n_valid'], n_test, px)) if wall else 0.0
        else: (px, source), overhead = measured_rate(r.models), 0.0
        one = P.estimate(e, e.name, n, n_test, px, source, r.book.folds, overhead, e.pretrained is not False)
        est += [P.Estimate(f'{e.name} #{k}' if r.book.repeat > 1 else e.name, one.seconds, source, one.runs)
                for k in range(1, r.book.repeat + 1)]
    return P.fit(est, r.left() if seconds_left is None else seconds_left, len(devices(r.gpus)))


def final(r: Run, chosen: list[str], screened: dict) -> dict:
    keep, drop = final_plan(r, chosen, screened)
    print(P.table(keep, drop, r.left()))
    labels = sorted({e.label.split(' #')[0] for e in keep}, key=chosen.index)
    if not labels: raise PaddyError(f"no final run fits in the {P.duration(r.left())} left: give more --hours")
    specs = [spec_file(e, r.folder / 'specs' / 'final') for e in experiments(r, 'final', labels)]
    repeat = r.book.repeat if all(sum(e.label.split(' #')[0] == lab for e in keep) == r.book.repeat
                                  for lab in labels) else 1
    done = sweep([str(s) for s in specs], repeat=repeat, gpus=r.gpus, data=str(r.data), name=r.sweep_name('final'),
                 hours=r.left() / 3600 if r.hours else None, models=r.models, folds=r.book.folds or None)
    return dict(runs=sorted(m['run'] for m in done.values()), planned=[vars(e) for e in keep],
                dropped=[vars(e) for e in drop], estimate=sum(e.seconds for e in keep))


def ensemble(r: Run, runs: list[str]) -> dict:
    "The final runs' ensemble as submissions/<run>.csv (one left by an earlier session is taken as it is)."
    sub = Path('submissions') / f'{r.name}.json'
    if sub.exists(): meta = read_json(sub)
    else: meta = make_ensemble(runs, select=r.book.select if len(runs) > 1 else None, name=r.name, data=r.data)
    where = None
    if meta['valid_error']['ensemble'] is not None:
        from ..interpret import interpret
        out = Path('reports') / f'interpret-{r.name}'
        if not out.exists(): interpret(ensemble=r.name, out=out)
        where = str(out)
    return dict(csv=meta['csv'], members=meta['runs'], weights=meta['weights'], method=meta['method'],
                valid_error=meta['valid_error']['ensemble'], interpret=where)


def final_runs(r: Run) -> list[str]:
    return sorted(m['run'] for m in finished(r.sweep_name('final'), r.models).values())
