"""`paddy`: one thin command per library function; bad input ends in one line and exit code 2."""
import functools, sys, warnings
from pathlib import Path
from typing import List, Optional

import typer

from .data import COMPETITION
from .kaggle.kernel import ACCELERATOR
from .errors import PaddyError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Road to the Top for Paddy Doctor: experiments → train → TTA → ensemble → submission.")
warnings.filterwarnings('ignore', category=FutureWarning, module='torch.jit')  # noise from an import, not the user's doing

DATA = typer.Option(None, '--data', help='competition folder (else $PADDY_DATA, /kaggle/input/…, data/paddy-disease-classification)')


def show(df, digits: int):
    "A table in full on stdout: no wrapping, no elided rows, blanks for missing values."
    import pandas as pd
    with pd.option_context('display.width', 250, 'display.max_colwidth', 60, 'display.max_rows', 500):
        typer.echo(df.to_string(index=False, na_rep='', float_format=lambda x: f'{x:.{digits}f}'))


def stoppable():
    """SIGTERM (a scheduler, `timeout`, a stopping sweep) and SIGINT stop the work as Ctrl-C does, even when started with
    SIGINT ignored (`cmd &` in a script), so an unfinished run still removes its files."""
    import signal
    def stop(signum, frame): raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM): signal.signal(sig, stop)


def plain_logs():
    """Into a file or pipe (a sweep's log, CI), keep fastai's epoch table but not its bars: fastprogress 1.x reads
    `stdout.isatty` without calling it, so it would write every bar update into the log, and each bar prints a `█`
    to test the terminal's encoding, through the module's own `print`, which NO_BAR does not stop."""
    if not sys.stdout.isatty():
        import fastprogress.fastprogress as fp
        fp.NO_BAR = True
        fp.print = lambda *args, **kwargs: None  # its table lines go through WRITER_FN, the builtin print, untouched


def friendly(fn):
    "Turn a `PaddyError` into one line per problem on stderr and exit code 2."
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try: return fn(*args, **kwargs)
        except PaddyError as e:
            for line in str(e).splitlines(): typer.echo(f'paddy: error: {line}', err=True)
            raise typer.Exit(2)
    return wrapper


@app.command()
@friendly
def train(exp: Optional[str] = typer.Argument(None, help='experiment name in experiments/, or a path to a .py spec'),
          data: Optional[Path] = DATA,
          set_: List[str] = typer.Option([], '--set', help='override a field, keeping its type: --set epochs=1'),
          wandb: bool = typer.Option(False, '--wandb', help='also log the run to Weights & Biases (needs wandb; WANDB_MODE=offline works)'),
          sweep: Optional[str] = typer.Option(None, hidden=True, help='SWEEP/JOB: set by paddy sweep, recorded in the metadata'),
          no_cache: bool = typer.Option(False, '--no-cache', help='decode every image every epoch instead of keeping them in the item cache (see paddy cache)'),
          precision: str = typer.Option('auto', help='on CUDA: auto (bf16 where the card has it, else fp16), bf16, fp16 or fp32'),
          channels_last: bool = typer.Option(True, '--channels-last/--no-channels-last', help='on CUDA: channels_last memory format'),
          resume: Optional[str] = typer.Option(None, '--resume', help='finish a stopped run from its last finished epoch (no EXP: the run names it)'),
          fit_memory: Optional[float] = typer.Option(None, '--fit-memory', help='GB of GPU memory to fit: measure a few steps, raise accum until they fit'),
          processes: int = typer.Option(1, '--processes', help='train on N processes (one per GPU; gloo on CPU) through `accelerate launch`')):
    "Fine-tune EXP, export models/<run>.pkl + .json, and save TTA probabilities to preds/<run>.npz."
    from .spec import load
    from .train import train
    if (exp is None) == (resume is None): raise PaddyError("give an experiment (paddy train EXP) or a stopped run (paddy train --resume RUN), one of the two")
    if resume and set_: raise PaddyError(f"--resume {resume} finishes the run as it was started: drop --set")
    if processes < 1: raise PaddyError(f"--processes {processes}: give 1 or more")
    if processes > 1:
        from .distributed import launch
        load(exp, set_) if exp else None  # a bad spec fails here, once, not in every process
        argv = (['train'] + ([exp] if exp else ['--resume', resume]) + (['--data', str(data)] if data else [])
                + [x for s in set_ for x in ('--set', s)] + (['--no-cache'] if no_cache else []) + ['--precision', precision]
                + ([] if channels_last else ['--no-channels-last']) + (['--fit-memory', str(fit_memory)] if fit_memory else [])
                + (['--wandb'] if wandb else []) + (['--sweep', sweep] if sweep else []))
        raise typer.Exit(launch(argv, processes))
    stoppable(); plain_logs()
    try: train(load(exp, set_) if exp else None, data=data, sweep=sweep, wandb=wandb, cache=not no_cache, prec=precision,
               channels_last=channels_last, go_on=resume, fit_memory=fit_memory)
    except KeyboardInterrupt: raise typer.Exit(130)  # what was saved, and how to go on, is already said


@app.command()
@friendly
def check(data: Optional[Path] = DATA, deep: bool = typer.Option(False, '--deep', help='decode every image (in parallel), not only its header and end')):
    "Check the competition folder before training: layout, train.csv against the folders, test ids, truncated or odd images."
    from .data import find_data, num_workers
    from .data.verify import verify
    path = find_data(data)
    problems = verify(path, deep=deep, workers=num_workers())
    for p in problems: typer.echo(f"{'paddy: error' if p.fatal else 'note'}: {p}", err=True)
    fatal = sum(p.fatal for p in problems)
    if fatal: raise typer.Exit(2)
    typer.echo(f"{path}: no problems{' (every image decoded)' if deep else ''}" + (f', {len(problems)} notes' if problems else ''))


@app.command()
@friendly
def sizes(data: Optional[Path] = DATA, odd: int = typer.Option(20, help='list at most this many images of an unusual size')):
    "Census of image sizes from the headers, in parallel: counts per W×H and orientation, and the odd ones by id."
    from .data import find_data
    from .data.sizes import census, summary
    typer.echo(summary(census(find_data(data)), odd))


@app.command()
@friendly
def resize(max_size: int = typer.Option(..., '--max-size', help='the longest side of every image, e.g. 256 (a 480×640 photo becomes 192×256)'),
           data: Optional[Path] = DATA,
           dest: Optional[Path] = typer.Option(None, help='where the copy goes (default: beside the data, NAME-MAX_SIZE)')):
    "Copy the competition folder with smaller images, in parallel and resumably; train on the copy with --data DEST."
    from .data import find_data, num_workers
    from .data.resize import resize
    out = resize(find_data(data), dest, max_size, workers=num_workers())
    typer.echo(f'{out}: ready; train on it with --data {out}')


@app.command()
@friendly
def cache(clear: bool = typer.Option(False, '--clear', help='remove every cached image set')):
    "Where the item cache lives, each cached image set with its size on disk; --clear removes them."
    import pandas as pd
    from .data import cache as C
    where = C.root()
    if where is None: return typer.echo('the item cache is off (PADDY_ITEM_CACHE=off)')
    if clear: return typer.echo(f'removed {where} ({C.gb(C.clear(where))})')
    rows = C.caches(where)
    typer.echo(f"{where}: {len(rows)} cached image sets, {C.gb(sum(r['bytes'] for r in rows))}; "
               'set PADDY_ITEM_CACHE=DIR to move it, PADDY_ITEM_CACHE=off or paddy train --no-cache to go without')
    if rows: show(pd.DataFrame(rows).drop(columns='bytes'), 2)


@app.command()
@friendly
def predict(run: str, data: Optional[Path] = DATA, out: Optional[Path] = typer.Option(None, help='where to write (default preds/RUN.npz)'),
            trust: bool = typer.Option(False, '--trust', help='load a .pkl from outside models/ (unpickling runs the code it holds)')):
    "Recompute RUN's TTA probabilities from its exported model (e.g. on CPU, or on another test folder)."
    from .predict import predict
    plain_logs()
    predict(run, data=data, out=out, trust=trust)


@app.command()
@friendly
def ensemble(runs: List[str] = typer.Argument(None, help='runs or globs (default: every run with predictions)'),
             weights: Optional[str] = typer.Option(None, help='comma-separated, one per run: --weights 2,1,1'),
             vote: bool = typer.Option(False, '--vote', help='majority vote instead of averaging probabilities'),
             name: Optional[str] = typer.Option(None, help='submissions/NAME.csv (default ensemble-DATE-TIME)'),
             data: Optional[Path] = DATA,
             select: Optional[str] = typer.Option(None, help='greedy: choose members and integer weights on the shared validation split (Caruana et al., 2004)'),
             steps: Optional[int] = typer.Option(None, help='with --select greedy: how many additions to try (default twice the runs)')):
    "Average the runs' test probabilities and write submissions/<name>.csv in sample_submission's order."
    from .ensemble import ensemble
    try: w = [float(x) for x in weights.split(',')] if weights else None
    except ValueError: raise PaddyError(f"--weights {weights}: give numbers separated by commas, e.g. --weights 2,1") from None
    ensemble(runs or (), weights=w, vote=vote, name=name, data=data, select=select, steps=steps)


COMP = typer.Option(COMPETITION, '--competition', '-c', help="the competition's slug, as in its URL")


@app.command()
@friendly
def download(competition: str = COMP, dest: Path = typer.Option(Path('data'), help='the files go to DEST/COMPETITION/')):
    "Download and unzip the competition's files once (inside a Kaggle notebook, use /kaggle/input/COMPETITION)."
    from .kaggle.download import download
    download(competition, dest)


@app.command('check-submission')
@friendly
def check_submission(csv: Path, data: Optional[Path] = DATA):
    "Check CSV against sample_submission.csv: header, every id once and in its order, a known label on every row."
    from .kaggle.lint import check_submission
    from .data import find_data
    typer.echo(f'{csv}: {check_submission(csv, find_data(data))} rows, ready to submit')


@app.command()
@friendly
def submit(csv: Path, message: str = typer.Option(..., '--message', '-m', help='shown on the leaderboard page; say what is in it'),
           competition: str = COMP, data: Optional[Path] = DATA,
           again: bool = typer.Option(False, '--again', help='submit a file that was submitted before')):
    "Check CSV, submit it through the kaggle client, and append it with its runs to submissions/log.csv."
    from .kaggle.submit import submit
    submit(csv, message, competition, data=data, again=again)


@app.command()
@friendly
def submissions(competition: str = COMP):
    "Your submissions: the log's runs and validation error beside the public and private scores (the log alone when offline)."
    from .kaggle.submit import submissions
    show(submissions(competition), 5)


@app.command()
@friendly
def sweep(exps: List[str] = typer.Argument(..., help='experiment names or spec paths'),
          repeat: int = typer.Option(1, help='runs of each experiment'),
          gpus: Optional[str] = typer.Option(None, help='GPU ids, one run per GPU at a time: --gpus 0,1,2 (default: all; none: CPU, one by one)'),
          set_: List[str] = typer.Option([], '--set', help='override a field of every experiment'),
          data: Optional[Path] = DATA,
          name: Optional[str] = typer.Option(None, help='sweeps/NAME/ (default: from the arguments, so the same command resumes)'),
          wandb: bool = typer.Option(False, '--wandb', help='log every run to Weights & Biases'),
          fit_memory: Optional[float] = typer.Option(None, '--fit-memory', help='passed to every run: GB of GPU memory to fit by raising accum')):
    "Train every EXP REPEAT times from a queue, a log file per run; stopped and started again, it skips finished runs."
    from .sweep import sweep
    stoppable()
    try: sweep(exps, repeat=repeat, gpus=gpus, sets=set_, data=data, name=name, wandb=wandb, fit_memory=fit_memory)
    except KeyboardInterrupt:
        typer.echo('paddy sweep: stopped; run the same command again to finish the runs left', err=True)
        raise typer.Exit(130)


@app.command()
@friendly
def results(models: Path = typer.Option(Path('models'), help='where the runs\' .json files are'),
            csv: Optional[Path] = typer.Option(None, help='also write the table to this CSV')):
    "Every finished run as one table: experiment, arch, family, transforms, error rates, fit time, GPU memory."
    from .results import results
    df = results(models)
    if csv is not None:
        from .provenance import open_new
        with open_new(csv, 'x', hint='choose another --csv') as f: df.to_csv(f, index=False)
        typer.echo(f'wrote {csv} ({len(df)} runs)', err=True)
    show(df.drop(columns=['created', 'sweep']), 4)


@app.command()
@friendly
def report(dataset: Optional[str] = typer.Option(None, help="only runs on this data folder's name, e.g. paddy-disease-classification"),
           top: int = typer.Option(15, help='how many to list by score'),
           score_constant: float = typer.Option(80, help='score = error_rate × (fit_time + SCORE_CONSTANT)'),
           agg: str = typer.Option('min', help='over repeated runs: min (as the seed notebook) or mean'),
           name: Optional[str] = typer.Option(None, help='reports/NAME.{png,csv,json} (default report-DATASET-DATE-TIME)'),
           models: Path = typer.Option(Path('models'), help="where the runs' .json files are"),
           wandb: Optional[str] = typer.Option(None, '--wandb', help='also import the runs of a W&B sweep: entity/project/sweep_id'),
           gist: bool = typer.Option(False, '--gist', help='publish the CSV as a secret gist (needs GITHUB_TOKEN)')):
    "Rank experiments: pivot by family and model, top N by score, the better-and-faster-than-median subset, and a plot."
    from .gist import publish, token
    from .report import report
    from .results import collect
    if gist: token()  # fail before any work
    df, sources = collect(models, wandb)
    r = report(df, dataset=dataset, top=top, constant=score_constant, agg=agg, name=name, sources=sources)
    if gist: typer.echo(f"published {r['files']['csv']} as {publish([r['files']['csv']], 'paddy report ' + r['files']['csv'].stem)}")


@app.command('list')
@friendly
def list_():
    "Show every experiment in experiments/ as a table."
    from .spec import table
    typer.echo(table())


@app.command()
@friendly
def demo(set_: List[str] = typer.Option([], '--set', help='override a field of both demo experiments'),
         data_only: bool = typer.Option(False, '--data-only', help='only lay the digits out in data/demo/, for your own runs or sweeps')):
    "Run the whole pipeline offline on scikit-learn's digits and print validation and test accuracy."
    from .demo import build_digits, demo
    if data_only: return typer.echo(f"{build_digits(Path('data/demo'))}: the digits in the competition's layout")
    plain_logs()
    demo(overrides=set_)


kaggle_app = typer.Typer(no_args_is_help=True, help="Train on Kaggle's GPUs: push a sweep as a notebook, ask how it does, pull its runs back.")
app.add_typer(kaggle_app, name='kaggle')


@kaggle_app.command('run')
@friendly
def kaggle_run(exps: List[str] = typer.Argument(..., help='experiment names in experiments/'),
               repeat: int = typer.Option(1, '--repeat', help='runs of each experiment (new splits only where seed = None)'),
               set_: List[str] = typer.Option([], '--set', help='override a field of every experiment: --set epochs=1'),
               accelerator: str = typer.Option(ACCELERATOR, '--accelerator', help="Kaggle's GPU: NvidiaTeslaT4 is two T4s"),
               title: Optional[str] = typer.Option(None, '--title', help="the notebook's title, which names it (default: paddy EXP…)"),
               fit_memory: Optional[float] = typer.Option(None, '--fit-memory', help="GB of the GPU's memory: each run raises accum until it fits (15 for a T4)"),
               dry_run: Optional[Path] = typer.Option(None, '--dry-run', help='write the dataset and kernel folders to DIR and push nothing')):
    "Push paddy (as a private dataset, when it changed) and a kernel that runs `paddy sweep EXP… --repeat N` on Kaggle's GPU."
    from .kaggle.runs import run
    run(exps, repeat, set_, accelerator, title, dry_run, fit_memory=fit_memory)


@kaggle_app.command('status')
@friendly
def kaggle_status(kernel: Optional[str] = typer.Argument(None, help='owner/slug[/version] (default: the last pushed, from kaggle-runs.csv)')):
    "The kernel's state in one line: queued, running, complete or error."
    from .kaggle.runs import status
    typer.echo(status(kernel))


@kaggle_app.command('pull')
@friendly
def kaggle_pull(kernel: Optional[str] = typer.Argument(None, help='owner/slug[/version] (default: the last pushed, from kaggle-runs.csv)'),
                models: bool = typer.Option(False, '--models', help='also the exported .pkl models, which are large'),
                data: Optional[Path] = DATA):
    "Bring a finished kernel's runs into models/ and preds/, where results, report and ensemble take them; never overwrites."
    from .kaggle.runs import pull
    pull(kernel, models, data)


if __name__ == '__main__': app()
