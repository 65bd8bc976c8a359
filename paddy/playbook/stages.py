"""The seven stages of a playbook, each a function of the run so far that returns what it records: check the data, make
the small copy, screen the candidates, rank them, train the top ones at full size, ensemble them, check (and submit)
the submission. Training goes through `paddy sweep`, which never retrains a finished run."""
import math, time
from dataclasses import replace
from pathlib import Path

from ..data import num_workers, read_train, tst_items
from ..data.resize import resize
from ..data.verify import check_folder
from ..ensemble import ensemble as make_ensemble
from ..errors import PaddyError
from ..files import read_json, write_json
from ..report import plot, ranking
from ..record import read_record
from ..results import fit_flag, metas, results
from ..spec import assignments, final_size, hw, load as load_experiment
from ..tables import table_text
from ..sweep import devices, finished, sweep
from ..workspace import Workspace, here
from . import plan as P
from .book import Playbook, label


class PlaybookRun:
    "A playbook run's context: the book, where it writes, the data, the budget and the clock of this session."
    def __init__(self, book: Playbook, name: str, data: Path, hours: float | None, gpus=None, spent: float = 0.0,
                 ws: Workspace | None = None):
        self.book, self.name, self.data, self.hours, self.gpus = book, name, data, hours, gpus
        self.spent, self.t0, self.ws = spent, time.time(), ws or here()

    @property
    def folder(self) -> Path: return self.ws.playbook(self.name)  # its state, plan, rank and summary

    def left(self) -> float:
        "Seconds of the budget left: the hours less the finished stages of earlier sessions and this session's time."
        return float('inf') if self.hours is None else self.hours * 3600 - self.spent - (time.time() - self.t0)

    def sweep_name(self, stage: str) -> str: return f'{self.name}-{stage}'

    def margin(self) -> float:
        "Seconds of the budget kept back from the runs' plan (`plan.MARGIN`); none without a budget."
        return P.MARGIN * self.hours * 3600 if self.hours else 0.0


def spec_file(exp, folder: Path) -> Path:
    "`exp` as an experiment file of plain assignments, every field written out: what the sweep trains, declared."
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / f'{exp.name}.py'
    f.write_text(f'"""Written by paddy playbook: {exp.name}, every field resolved."""\n' + assignments(exp))
    return f


def experiments(r: PlaybookRun, stage: str, labels: list[str] | None = None, epochs: int | None = None) -> list:
    """The candidates (or those of `labels`) as experiments of `stage` (screen or final), named by their labels; a
    final one with `epochs` where given (the budget's), else the playbook's."""
    b, out = r.book, []
    for exp, sets in b.candidate_sets():
        lab = label(exp, sets)
        if labels is not None and lab not in labels: continue
        extra = [*b.screen_sets, f'epochs={b.screen_epochs}'] if stage == 'screen' else [
            *b.final_sets, f'epochs={epochs or b.final_epochs}']
        out.append(replace(load_experiment(exp, [*extra, *sets]), name=lab))  # the candidate's own sets win
    return out if labels is None else sorted(out, key=lambda e: labels.index(e.name))


def check(r: PlaybookRun) -> dict:
    report = check_folder(r.data)
    (r.folder / 'check.txt').write_text(report + '\n')
    print(report)
    return dict(report='check.txt')


def shrink(r: PlaybookRun) -> dict:
    """The small copy, under data/, reused when it exists (`paddy resize` resumes and checks it); none where nothing
    will screen on it."""
    if not r.book.screen_size or unrankable(r): return dict(data=str(r.data))
    dest = r.ws.small_copy(r.data, r.book.screen_size)
    return dict(data=str(resize(r.data, dest, r.book.screen_size, workers=num_workers()).resolve()))


def counts(data: Path) -> tuple[int, int]:
    return len(read_train(data)), len(tst_items(data)[0])


def screen_estimates(r: PlaybookRun, data: Path) -> list[P.Estimate]:
    """Each screening run's time, from the rate of any run measured before (else a prior for this device), and the
    device's start-up per run; its TTA on the test set only when the screening runs are the ensemble's (top = 0)."""
    n, n_test = counts(data)
    n_test = 0 if r.book.top else n_test
    return [P.estimate(e, e.name, n, n_test, *measured_rate(r.ws, e), overhead=P.PRIOR_STARTUP_S[device()],
                       pretrained=e.pretrained is not False) for e in experiments(r, 'screen')]


def device() -> str:
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'



def measured_rate(ws: Workspace, exp=None) -> tuple[float, str]:
    """The median pixels a second of the finished runs on record; else, on a CPU, `exp`'s own training step probed
    (the cpu prior describes Lite0 with no stage held, 1.6 times slower than the playbook's held runs); else the prior
    for this device."""
    from ..train.probe import LEARNER_S_PER_IMAGE, learner_images_per_s
    done = [m for _, m in metas(ws, warn=False) if m.img_per_s and m.experiment.arch]
    if done:
        rates = sorted(P.rate(m) for m in done)
        return rates[len(rates) // 2], f'the median rate of {len(rates)} finished runs'
    ips = learner_images_per_s(exp) if exp is not None else None
    if ips: return ips * P.cost(exp), (f"a probe of its training step and {LEARNER_S_PER_IMAGE * 1000:g} ms an image "
                                       "for the Learner: no run measured yet")
    dev = device()
    return P.PRIOR_PX_PER_S[dev], f'a prior for {dev}: no run measured yet'


def unrankable(r: PlaybookRun) -> str | None:
    """Why screening would rank `r`'s candidates within noise, by the playbook's `screen_resolve` and the size of the
    validation split; None where it can rank them, or where the screening runs are the ensemble's (top = 0)."""
    if not (r.book.top and r.book.screen_resolve): return None
    n_valid = round(counts(r.data)[0] * experiments(r, 'screen')[0].valid_pct)
    if P.resolution(n_valid) <= r.book.screen_resolve: return None
    return (f"no screening: {n_valid} validation images tell apart only candidates {P.resolution(n_valid):.1%} apart "
            f"in error (`plan.resolution`), more than the playbook's screen_resolve {r.book.screen_resolve:.1%}, so "
            "its ranking would lie within noise; the playbook's first candidate goes on")


def screen_plan(r: PlaybookRun, data: Path) -> tuple[list[P.Estimate], str]:
    """The screening runs the budget's share holds (`plan.screen_share`), and why; every candidate when the screening
    runs are themselves the ensemble's (top = 0)."""
    why = unrankable(r)
    if why: return [], why
    est = screen_estimates(r, data)
    budget = r.hours * 3600 if r.hours and r.book.top else None
    return P.screen_share(est, budget, len(devices(r.gpus)))


def affordable(r: PlaybookRun, data: Path):
    "Raise, saying how much it needs, when the time left cannot hold the planned screening and one final run."
    est, _ = screen_plan(r, data)
    need = sum(e.seconds for e in est) / max(1, len(devices(r.gpus)))
    first = final_plan(r, [r.book.first()], {}, float('inf'))[0][:1] if r.book.top else []
    need += sum(e.seconds for e in first)
    if need > r.left():
        what = f"the screening ({len(est)} runs) and one final run" if est and first else \
            "one final run" if first else f"the screening ({len(est)} runs)"
        raise PaddyError(f"--hours {r.hours:g} leaves {P.duration(r.left())}, and {what} alone needs about "
                         f"{P.duration(need)} (from {(est or first)[0].source}): give --hours "
                         f"{(need + r.spent) / 3600 / (1 - P.MARGIN) * 1.2:.2g} or more, or fewer candidates")


def screen(r: PlaybookRun, data: Path) -> dict:
    est, why = screen_plan(r, data)
    print(f'{r.name}: {why}')
    if not est: return dict(runs={}, skipped=True, why=why, estimate=0.0, wall_per_run=None, data=str(data))
    specs = [spec_file(e, r.folder / 'specs' / 'screen') for e in experiments(r, 'screen', [e.label for e in est])]
    t0, before = time.time(), len(finished(r.sweep_name('screen'), r.ws))
    done = sweep([str(s) for s in specs], gpus=r.gpus, data=str(data), name=r.sweep_name('screen'),
                 hours=r.left() / 3600 if r.hours else None, ws=r.ws, test_preds=not r.book.top)
    runs = {m.name: m.run for m in done.values()}
    # a run's wall time beyond its fit and TTA (start-up, the item cache): what the final estimates add to each run
    wall = (time.time() - t0) / max(1, len(done) - before) if len(done) > before else None
    return dict(runs=runs, estimate=sum(e.seconds for e in est), wall_per_run=wall, data=str(data), why=why)


def rank(r: PlaybookRun, screened: dict) -> dict:
    """The screening runs by TTA error, with the bootstrap's interval; the top ones go on: first those within noise of
    the best (`choose`), then the rest by error. With no screening, the playbook's first candidate."""
    if screened.get('skipped'):
        print(f"taking forward {r.book.first()}, the playbook's first candidate: {screened['why']}")
        return dict(chosen=[r.book.first()], indistinguishable=[], why=screened['why'], better_and_faster=[],
                    unranked=True)
    df = results(r.ws)
    df = df[df.sweep.astype(str).str.startswith(r.sweep_name('screen') + '/')].dropna(subset=['error_rate'])
    if df.empty: raise PaddyError(f"no screening run of {r.name} finished: see {r.ws.sweep(r.sweep_name('screen'))}/")
    p, fast = ranking(df, by='error', ws=r.ws)
    p.drop(columns='run_names').to_csv(r.folder / 'rank.csv', index=False)
    plot(p, r.folder / 'rank.png', df)
    chosen, tied = choose(p, r.book.top)
    print(table_text(p[['experiment', 'runs', 'error_rate', 'tta_error_rate', 'lo', 'hi', 'same_as_best', 'fit_time']]))
    why = (f"{len(tied)} within noise of the best ({', '.join(tied)}): the faster first, and another family or "
           "resize method before a second of one already taken" if len(tied) > 1 else
           f"{tied[0]} is better than the others beyond noise" if len(p) > 1 else "one candidate")
    print(f"taking forward {', '.join(chosen) or 'none'}: {why}")
    return dict(chosen=chosen, indistinguishable=tied, why=why, better_and_faster=fast.experiment.tolist(),
                table='rank.csv', plot='rank.png')


def choose(p, k: int) -> tuple[list[str], list[str]]:
    """Up to `k` experiments of `p` (sorted by `ranked` error, with `with_noise`'s columns): those that cannot be told
    from the best first, the faster and the more diverse (a family, then a resize method, not yet taken) before the
    others; then the rest by error. Also the names that cannot be told from the best."""
    tied = p[p.same_as_best.fillna(False).astype(bool)] if p.same_as_best.notna().any() else p.head(1)
    pool, taken = list(tied.sort_values('fit_time').itertuples()), []
    while pool and len(taken) < k:
        seen_fam, seen_resize = {t.family for t in taken}, {t.resize for t in taken}
        nxt = min(pool, key=lambda t: (t.family in seen_fam, t.resize in seen_resize))  # min keeps the faster on ties
        taken.append(nxt); pool.remove(nxt)
    rest = [t for t in p.itertuples() if t.experiment not in set(tied.experiment)]
    chosen = [t.experiment for t in taken] + [t.experiment for t in rest][:max(0, k - len(taken))]
    return chosen, tied.experiment.tolist()


def probed(measured, planned, px: float, source: str) -> tuple[float, str]:
    """`px` measured on `measured`, for `planned`: scaled by a probe of both sizes' training steps (a few seconds on a
    CPU) where the arch is timm's, else by pixels (`plan.cost`)."""
    from ..train.probe import slowdown
    k = slowdown(measured, planned) if final_size(measured) != final_size(planned) else None
    if not k: return px, source
    return P.scaled(px, measured, planned, k), f"{source}, ×{k:.1f} a step at the final size by a probe"


def final_plan(r: PlaybookRun, chosen: list[str], screened: dict,
               seconds_left: float | None = None) -> tuple[list[P.Estimate], list[P.Estimate], int, str, float]:
    """Each chosen candidate's final runs, estimated from its own screening run (else the rate on record), those that
    fit `seconds_left` (default: the time left now, less `plan.MARGIN` of the budget), their epochs, and why: with a
    budget, the most that fit (`plan.epochs_for`), more epochs before more runs where every screening run ended still
    underfitting (an ensemble of runs that have not fitted buys less than one run trained longer: docs/benchmarks.md),
    and a larger size where the runs have `plan.MAX_EPOCHS` times the playbook's epochs with time to spare (`larger`);
    else the playbook's. Last, the factor of that growth (1: none)."""
    n, n_test = counts(r.data)
    left = r.left() - r.margin() if seconds_left is None else seconds_left
    rates, flags = {}, {}
    for e in experiments(r, 'final', chosen):
        run = (screened.get('runs') or {}).get(e.name)
        rec = read_record(r.ws.record(run)) if run and r.ws.finished(run) else None
        if rec:
            flags[e.name] = fit_flag(rec.history)
            px, source, wall = P.rate(rec), f"its screening run {run}", screened.get('wall_per_run')
            shot = experiments(r, 'screen', [e.name])[0]
            overhead = max(0.0, wall - rec.fit_time - P.tta(shot, rec.n_valid, 0, px)) if wall else 0.0
            px, source = probed(rec.experiment, e, px, source)
        else: (px, source), overhead = measured_rate(r.ws, e), P.PRIOR_STARTUP_S[device()]
        rates[e.name] = px, source, overhead

    def make(epochs: int, grow: float = 1.0) -> list[P.Estimate]:
        out = []
        for base in experiments(r, 'final', chosen, epochs):
            e = P.grown(base, grow)
            px, source, overhead = rates[e.name]
            if grow != 1:  # the larger size measured as the base one was: from its screening run, else afresh
                px, source = probed(base, e, px, source) if e.name in flags else measured_rate(r.ws, e)
            one = P.estimate(e, e.name, n, n_test, px, source, r.book.folds, overhead, e.pretrained is not False,
                             r.book.final_full)
            out += [P.Estimate(f'{e.name} #{k}' if r.book.repeat > 1 else e.name, one.seconds, source, one.runs)
                    for k in range(1, r.book.repeat + 1)]
        return out
    devs = len(devices(r.gpus))
    if r.hours is None or left == float('inf'):
        return *P.fit(make(r.book.final_epochs), left, devs), r.book.final_epochs, "the playbook's: no budget", 1.0
    underfit = bool(flags) and all(f == 'underfits' for f in flags.values())
    first = underfit or not flags
    epochs, keep, drop = P.epochs_for(make, r.book.final_epochs, left, devs, epochs_first=first)
    why = ("the screening runs ended still underfitting (training loss above validation loss): more epochs before "
           "more runs" if underfit else "no screening run measured whether the recipe fits: more epochs before more "
           "runs" if not flags else "the most at which the runs fit")
    base = experiments(r, 'final', chosen[:1])[0]
    grow, more = larger(r, base, make, epochs, keep, left, devs)
    if grow != 1:
        why += (f"; past {P.MAX_EPOCHS * r.book.final_epochs} epochs the rest of the budget buys pixels: "
                f"{more[0]} epochs at {size_words(final_size(P.grown(base, grow)))} rather than {epochs} at "
                f"{size_words(final_size(base))}")
        epochs, keep = more
    return keep, drop, epochs, why, grow


def larger(r: PlaybookRun, base, make, epochs: int, keep: list[P.Estimate], left: float,
           devs: int) -> tuple[float, tuple[int, list[P.Estimate]] | None]:
    """Where the `keep` runs have at least `plan.MAX_EPOCHS` times the playbook's epochs: the largest growth of the
    final size (`plan.growths` of `base`, each measured) at which they still end within `left` with at least
    `plan.GROW_KEEP` of their `epochs`, and their epochs and estimates there. 1 and None where nothing grows."""
    if epochs < P.MAX_EPOCHS * r.book.final_epochs or not keep or r.book.folds: return 1.0, None
    best = 1.0, None
    for g in P.growths(base):
        for e in range(epochs, math.ceil(P.GROW_KEEP * epochs) - 1, -1):
            runs = make(e, g)[:len(keep)]
            if not P.fit(runs, left, devs)[1]: best = g, (e, runs); break
        else: break  # a larger size fits no better
    return best


def size_words(size) -> str:
    h, w = hw(size)
    return f'{h} px' if h == w else f'{h}×{w} px'


def final(r: PlaybookRun, chosen: list[str], screened: dict) -> dict:
    "The final sweep, as planned once: a session that goes on from a stop trains what that plan said."
    f = r.folder / 'final-plan.json'
    if f.exists(): plan = read_json(f, "move it aside: the final stage plans again")
    else:
        keep, drop, epochs, why, grow = final_plan(r, chosen, screened)
        plan = dict(keep=[vars(e) for e in keep], drop=[vars(e) for e in drop], epochs=epochs, why=why, grow=grow)
        write_json(f, plan)
    keep, drop = [P.Estimate(**e) for e in plan['keep']], [P.Estimate(**e) for e in plan['drop']]
    notes = ([f"the playbook's {r.book.final_epochs}, scaled to the budget"] if plan['epochs'] != r.book.final_epochs
             else []) + ([plan['why']] if plan.get('why') else [])
    print(P.table(keep, drop, r.left()) + f"\n  epochs: {plan['epochs']}" + (f" ({'; '.join(notes)})" if notes else ''))
    labels = sorted({e.label.split(' #')[0] for e in keep}, key=chosen.index)
    if not labels: raise PaddyError(f"no final run fits in the {P.duration(r.left())} left: give more --hours")
    exps = [P.grown(e, plan.get('grow', 1.0)) for e in experiments(r, 'final', labels, plan['epochs'])]
    specs = [spec_file(e, r.folder / 'specs' / 'final') for e in exps]
    repeat = r.book.repeat if all(sum(e.label.split(' #')[0] == lab for e in keep) == r.book.repeat
                                  for lab in labels) else 1
    done = sweep([str(s) for s in specs], repeat=repeat, gpus=r.gpus, data=str(r.data), name=r.sweep_name('final'),
                 hours=r.left() / 3600 if r.hours else None, ws=r.ws, folds=r.book.folds or None,
                 full=r.book.final_full)
    return dict(runs=sorted(m.run for m in done.values()), planned=plan['keep'], dropped=plan['drop'],
                estimate=sum(e.seconds for e in keep), epochs=plan['epochs'], why=plan.get('why'),
                size=size_words(final_size(exps[0])))


def ensemble(r: PlaybookRun, runs: list[str]) -> dict:
    "The final runs' ensemble as submissions/<run>.csv (one left by an earlier session is taken as it is)."
    sub = r.ws.ensemble_record(r.name)
    if sub.exists(): meta = read_json(sub)
    else: meta = make_ensemble(runs, select=r.book.select if len(runs) > 1 else None, name=r.name, data=r.data,
                               ws=r.ws)
    where = None
    if meta['valid_error']['ensemble'] is not None:
        from ..interpret import interpret
        out = r.ws.interpretation(r.name)
        if not out.exists(): interpret(ensemble=r.name, out=out, ws=r.ws)
        where = str(out)
    return dict(csv=meta['csv'], members=meta['runs'], weights=meta['weights'], method=meta['method'],
                valid_error=meta['valid_error']['ensemble'], interpret=where)


def final_runs(r: PlaybookRun) -> list[str]:
    return sorted(m.run for m in finished(r.sweep_name('final'), r.ws).values())
