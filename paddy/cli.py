"""`paddy`: one thin command per library function; bad input ends in one line and exit code 2."""
import dataclasses, functools, sys
from pathlib import Path
from typing import Annotated, List, Optional, Tuple

import typer

from .data import COMPETITION
from . import compat, stops
from .errors import PaddyError, from_os_error
from .kaggle.kernel import ACCELERATOR, GPUS
from .workspace import Workspace, here

# rich markup, whatever typer's default: a `[` in a help text is written `\[` (tests/test_cli.py tries every --help)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode='rich',
                  help="Road to the Top for Paddy Doctor: experiments → train → TTA → ensemble → submission.")
stops.quiet('import')

# options that several commands share, defined once
DATA = Annotated[Optional[Path], typer.Option(
    '--data', help='competition folder (else $PADDY_DATA, /kaggle/input/…, data/paddy-disease-classification)')]
SETS = Annotated[List[str], typer.Option('--set', help='override a field, keeping its type: --set epochs=1')]
WANDB = Annotated[bool,
                  typer.Option('--wandb', help='also log to Weights & Biases (needs wandb; WANDB_MODE=offline works)')]
FIT_MEMORY = Annotated[Optional[float], typer.Option(
    '--fit-memory', help='GB of GPU memory to fit: measure a few steps, raise accum until they fit')]
NO_TEST_PREDS = Annotated[bool, typer.Option(
    '--no-test-preds', help="skip the test set's TTA (a run only screened): `paddy ensemble` makes it when it takes "
    'the run')]
def project(models: Path | None = None) -> Workspace:
    "The workspace a command works in: the current folder's (`workspace.here`), its models elsewhere with --models."
    return here() if models is None else dataclasses.replace(here(), models=models)


MODELS = Annotated[Optional[Path], typer.Option('--models', help="where the runs' .json files are (default models/)")]
COMP = Annotated[str, typer.Option('--competition', '-c', help="the competition's slug, as in its URL")]
KERNEL = Annotated[Optional[str], typer.Argument(
    help=r'owner/slug\[/version] (default: the last pushed, from kaggle-runs.csv)', show_default=False)]


def show(df, digits: int):
    "A table in full on stdout."
    from .tables import table_text
    typer.echo(table_text(df, digits))


def plain_logs():
    """Into a file or pipe (a sweep's log, CI), keep fastai's epoch table but not its bars: fastprogress 1.x reads
    `stdout.isatty` without calling it, so it would write every bar update into the log, and each bar prints a `█`
    to test the terminal's encoding, through the module's own `print`, which NO_BAR does not stop."""
    if not sys.stdout.isatty(): compat.fastprogress_plain()


def friendly(fn):
    "Turn a `PaddyError`, or an unexpected `OSError`, into one line per problem on stderr and exit code 2."
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            try: return fn(*args, **kwargs)
            except OSError as e: raise from_os_error(e) from None
        except PaddyError as e:
            for line in str(e).splitlines(): typer.echo(f'paddy: error: {line}', err=True)
            raise typer.Exit(2)
    return wrapper


@app.command()
@friendly
def train(exp: Annotated[Optional[str],
                         typer.Argument(help='experiment name in experiments/, or a path to a .py spec')] = None,
          data: DATA = None, set_: SETS = [], wandb: WANDB = False,
          sweep: Annotated[Optional[str], typer.Option(hidden=True, help='SWEEP/JOB: set by paddy sweep')] = None,
          no_cache: Annotated[bool, typer.Option(
              '--no-cache', help='decode every image every epoch instead of keeping them in the item cache')] = False,
          no_gpu_cache: Annotated[bool, typer.Option(
              '--no-gpu-cache', help='on CUDA: batch the cached training images from host memory even when they would '
              'fit on the GPU')] = False,
          precision: Annotated[str, typer.Option(
              help='on CUDA: auto (bf16 where the card has it, else fp16), bf16, fp16 or fp32')] = 'auto',
          channels_last: Annotated[bool, typer.Option(
              '--channels-last/--no-channels-last', help='on CUDA: channels_last memory format')] = True,
          resume: Annotated[Optional[str], typer.Option(
              '--resume', help='finish a stopped run from its last finished epoch (no EXP: the run names it)')] = None,
          fit_memory: FIT_MEMORY = None,
          processes: Annotated[int, typer.Option(
              '--processes', help='train on N processes (one per GPU; gloo on CPU) through `accelerate launch`')] = 1,
          folds: Annotated[Optional[int], typer.Option(
              '--folds', help='a CV run: K runs, each holding out one fold of a stratified plan in folds/, and their '
              'out-of-fold predictions')] = None,
          full: Annotated[bool, typer.Option(
              '--full', help='a final fit on every training image, no validation; the CV run of the same recipe '
              'stands for it')] = False,
          no_test_preds: NO_TEST_PREDS = False):
    """Fine-tune EXP, export models/<run>.pkl + .json, and save TTA probabilities to preds/<run>.npz; --folds K makes a
    CV run of K such runs instead, --full a final fit on all the data."""
    from .train import Settings
    from .train.cv import start
    from .owner import die_with_parent
    from .stops import stoppable, stopping
    plain_logs(); die_with_parent()
    settings = Settings(data=None if data is None else str(data), cache=not no_cache, gpu_cache=not no_gpu_cache,
                        precision=precision,
                        channels_last=channels_last, sweep=sweep, wandb=wandb, fit_memory=fit_memory,
                        processes=processes, test_preds=not no_test_preds)
    try:
        with stoppable(): code = start(exp, set_, settings, resume, folds, full)
    except KeyboardInterrupt: raise typer.Exit(130)  # what was saved, and how to go on, is already said
    except Exception:
        if stopping(): raise typer.Exit(130) from None  # a loader worker the same stop killed, say
        raise
    raise typer.Exit(code)


@app.command()
@friendly
def check(data: DATA = None,
          deep: Annotated[bool,
                          typer.Option('--deep',
                                       help='decode every image (in parallel), not only its header and end')] = False):
    """Check the competition folder before training: layout, train.csv against the folders, test ids, truncated or odd
    images."""
    from .data.verify import check_folder
    typer.echo(check_folder(data, deep))


@app.command()
@friendly
def sizes(data: DATA = None,
          odd: Annotated[int, typer.Option(help='list at most this many images of an unusual size')] = 20):
    "Census of image sizes from the headers, in parallel: counts per W×H and orientation, and the odd ones by id."
    from .data.sizes import report
    typer.echo(report(data, odd))


@app.command()
@friendly
def resize(max_size: Annotated[int, typer.Option(
               '--max-size', help='the longest side of every image, e.g. 256 (a 480×640 photo becomes 192×256)')],
           data: DATA = None,
           dest: Annotated[Optional[Path],
                           typer.Option(help='where the copy goes (default: beside the data, NAME-MAX_SIZE)')] = None):
    "Copy the competition folder with smaller images, in parallel and resumably; train on the copy with --data DEST."
    from .data.resize import copy
    typer.echo(copy(data, dest, max_size))


@app.command()
@friendly
def cache(clear: Annotated[bool, typer.Option('--clear', help='remove every cached image set')] = False):
    "Where the item cache lives, each cached image set with its size on disk; --clear removes them."
    from .data.cache import describe
    typer.echo(describe(clear))


@app.command()
@friendly
def predict(model: Annotated[str, typer.Argument(help='a run, an export folder, or an exported ensemble')],
            folder: Annotated[Optional[Path], typer.Argument(
                help='photos to label, searched recursively (without it: the competition test set, for a run)',
                show_default=False)] = None,
            data: DATA = None,
            out: Annotated[Optional[Path], typer.Option(
                help='where to write: with FOLDER a CSV (default preds/folders/MODEL-DATE-TIME.csv); without, an .npz '
                     '(default preds/RUN.npz where the run has none, else preds/predicted/RUN-DATE-TIME.npz)')] = None,
            top_k: Annotated[int, typer.Option('--top-k', help='with FOLDER: how many labels a photo')] = 1,
            tta: Annotated[bool, typer.Option(
                '--tta', help="with FOLDER: a run's TTA, or an export's views (plain and mirrored)")] = False,
            probs: Annotated[bool, typer.Option('--probs', help='with FOLDER: a column per class too')] = False,
            trust: Annotated[bool, typer.Option(
                '--trust', help='load a .pkl from outside models/ (unpickling runs the code it holds)')] = False):
    """Label every photo under FOLDER as a CSV, from a run, an export or an exported ensemble; or, without FOLDER,
    recompute a run's TTA probabilities of the competition's validation split and test set."""
    from .infer import check_without_folder, predict_folder
    plain_logs()
    if folder is None:
        from .predict import predict
        check_without_folder(model, top_k, tta, probs)
        predict(model, data=data, out=out, trust=trust)
        return
    written, n, failed = predict_folder(model, folder, here(), out=out, top_k=top_k, tta=tta, probs=probs, trust=trust)
    typer.echo(f"wrote {written}: {n} photos" + (f", {failed} of them unreadable (their rows name the error)"
                                                  if failed else ''))
    if failed: raise typer.Exit(1)


@app.command()
@friendly
def export(run: Annotated[Optional[str], typer.Argument(help='a finished run in models/', show_default=False)] = None,
           ensemble: Annotated[Optional[str], typer.Option(
               '--ensemble', help='an ensemble in submissions/ instead, by its name: each member once')] = None,
           out: Annotated[Optional[Path], typer.Option(help='the folder to write (default exports/NAME)')] = None,
           data: DATA = None):
    """Write RUN as a folder that loads without paddy, fastai or pickle: model.safetensors, config.json, a model card
    and predict.py, checked against the Learner's own predictions first."""
    from .export import export, export_ensemble
    if (run is None) == (ensemble is None): raise PaddyError("name a run, or --ensemble NAME (one of the two)")
    if ensemble: export_ensemble(ensemble, here(), out=out, data=data)
    else: export(run, here(), out=out, data=data)


@app.command()
@friendly
def push(export: Annotated[Path, typer.Argument(help='a folder `paddy export` wrote')],
         repo: Annotated[str, typer.Argument(help='the model repo on the Hugging Face Hub: USER/NAME')],
         private: Annotated[bool, typer.Option('--private', help='make the repo private when creating it')] = False):
    "Upload an export to the Hugging Face Hub (the token from HF_TOKEN or `hf auth login`)."
    from .push import push
    push(export, repo, private=private)


@app.command()
@friendly
def interpret(run: Annotated[Optional[str], typer.Argument(help='a run with predictions in preds/')] = None,
              ensemble: Annotated[Optional[str], typer.Option(
                  '--ensemble', help='an ensemble in submissions/ instead, by its name')] = None,
              top: Annotated[int, typer.Option(help='how many top losses to show')] = 9,
              out: Annotated[Optional[Path], typer.Option(
                  help='the folder to write (default reports/interpret-NAME)')] = None, data: DATA = None):
    """What RUN (or an ensemble) gets wrong on the validation split: confusion.png, classes.csv (error, precision and
    recall per class) and top_losses.png, from its TTA probabilities."""
    from .interpret import interpret
    interpret(run, ensemble, out=out, top=top, data=data)


@app.command()
@friendly
def ensemble(runs: Annotated[Optional[List[str]], typer.Argument(
                 help='runs or globs (default: every run with predictions)', show_default=False)] = None,
             weights: Annotated[Optional[str],
                                typer.Option(help='comma-separated, one per run: --weights 2,1,1')] = None,
             vote: Annotated[bool,
                             typer.Option('--vote', help='majority vote instead of averaging probabilities')] = False,
             name: Annotated[Optional[str],
                             typer.Option(help='submissions/NAME.csv (default ensemble-DATE-TIME)')] = None,
             data: DATA = None,
             select: Annotated[Optional[str], typer.Option(
                 help='greedy: choose members and integer weights on the shared validation split (Caruana '
                      'et al., 2004, with replacement); logloss: fit weights that minimise its log loss. On CV runs, '
                      'that split is their out-of-fold predictions')] = None,
             steps: Annotated[Optional[int], typer.Option(
                 help='with --select greedy: how many additions to try (default twice the runs)')] = None):
    "Average the runs' test probabilities and write submissions/<name>.csv in sample_submission's order."
    from .ensemble import ensemble
    ensemble(runs or (), weights=weights, vote=vote, name=name, data=data, select=select, steps=steps)


@app.command()
@friendly
def pseudo(ensemble: Annotated[str, typer.Argument(help='an ensemble in submissions/, by its name')],
           dest: Annotated[Path, typer.Option(help='the new data folder to write')],
           threshold: Annotated[float, typer.Option(help="add test images whose ensemble probability reaches this")]
           = 0.95,
           max_share: Annotated[float, typer.Option(
               '--max-share', help='add at most this share of the training set, the most confident first')] = 0.2,
           data: DATA = None):
    """Write a data folder of the ensemble's data (linked, not copied) with its confident test images added as training
    images under their predicted labels, marked pseudo=1 in train.csv; train on it with --data DEST."""
    from .pseudo import pseudo
    pseudo(ensemble, dest, threshold, max_share, data)


@app.command()
@friendly
def download(competition: COMP = COMPETITION,
             dest: Annotated[Optional[Path], typer.Option(help='the files go to DEST/COMPETITION/ (default data/)')]
             = None):
    "Download and unzip the competition's files once (inside a Kaggle notebook, use /kaggle/input/COMPETITION)."
    from .kaggle.download import download
    download(competition, dest)


@app.command('check-submission')
@friendly
def check_submission(csv: Path, data: DATA = None):
    "Check CSV against sample_submission.csv: header, every id once and in its order, a known label on every row."
    from .kaggle.lint import check_file
    typer.echo(check_file(csv, data))


@app.command()
@friendly
def submit(csv: Path,
           message: Annotated[str,
                              typer.Option('--message', '-m', help='shown on the leaderboard page; say what is in it')],
           competition: COMP = COMPETITION, data: DATA = None,
           again: Annotated[bool, typer.Option('--again', help='submit a file that was submitted before')] = False):
    "Check CSV, submit it through the kaggle client, and append it with its runs to submissions/log.csv."
    from .kaggle.submit import upload
    upload(csv, message, competition, data=data, again=again)


@app.command()
@friendly
def submissions(competition: COMP = COMPETITION):
    """Your submissions: the log's runs and validation error beside the public and private scores (the log alone when
    offline)."""
    from .kaggle.submit import submissions
    show(submissions(competition), 5)


@app.command()
@friendly
def sweep(exps: Annotated[List[str], typer.Argument(help='experiment names or spec paths')],
          repeat: Annotated[int, typer.Option(help='runs of each experiment')] = 1,
          gpus: Annotated[Optional[str], typer.Option(
              help='GPU ids, one run per GPU at a time: --gpus 0,1,2 (default: all; none: CPU, one by one)')] = None,
          set_: SETS = [], data: DATA = None,
          name: Annotated[Optional[str], typer.Option(
              help='sweeps/NAME/ (default: from the arguments, so the same command resumes)')] = None,
          wandb: WANDB = False, fit_memory: FIT_MEMORY = None,
          hours: Annotated[Optional[float], typer.Option(
              help='start no run that would not end within HOURS, its time estimated from the runs that finished')]
          = None,
          folds: Annotated[Optional[int], typer.Option(
              '--folds', help='make each job a CV run of K folds (paddy train EXP --folds K)')] = None,
          full: Annotated[bool, typer.Option(
              '--full', help='make each job a final fit on every training image (paddy train EXP --full)')] = False,
          engine: Annotated[str, typer.Option(
              help="local: this machine's GPUs; ray: a Ray cluster's, one run per GPU (pip install 'paddy\\[ray]', "
                   "see docs/cluster.md)")] = 'local',
          address: Annotated[Optional[str], typer.Option(
              help='with --engine ray: auto (the cluster `ray start` made here) or the head HOST:PORT (default: '
                   'start Ray on this machine alone)')] = None,
          no_test_preds: NO_TEST_PREDS = False):
    "Train every EXP REPEAT times from a queue, a log file per run; stopped and started again, it skips finished runs."
    from .sweep import sweep
    from .stops import stoppable
    try:
        with stoppable():
            sweep(exps, repeat=repeat, gpus=gpus, sets=set_, data=data, name=name, wandb=wandb, fit_memory=fit_memory,
                  hours=hours, folds=folds, engine=engine, address=address, test_preds=not no_test_preds,
                  full=full)
    except KeyboardInterrupt:
        typer.echo('paddy sweep: stopped; run the same command again to finish the runs left', err=True)
        raise typer.Exit(130)


@app.command()
@friendly
def results(models: MODELS = None,
            csv: Annotated[Optional[Path], typer.Option(help='also write the table to this CSV')] = None):
    "Every finished run as one table: experiment, arch, family, transforms, error rates, fit time, GPU memory."
    from .results import table
    show(table(project(models), csv), 4)


@app.command()
@friendly
def report(dataset: Annotated[Optional[str], typer.Option(
               help="only runs on this data folder's name, e.g. paddy-disease-classification")] = None,
           top: Annotated[int, typer.Option(help='how many to list by score')] = 15,
           score_constant: Annotated[float, typer.Option(help='score = TTA error × (fit_time + SCORE_CONSTANT)')] = 80,
           agg: Annotated[str, typer.Option(
               help='over repeated runs: mean (as the seed notebook), or min: the best run whole')] = 'mean',
           name: Annotated[Optional[str], typer.Option(
               help='reports/NAME.{png,csv,json} (default report-DATASET-DATE-TIME)')] = None,
           models: MODELS = None,
           wandb: Annotated[Optional[str], typer.Option(
               '--wandb', help='also import the runs of a W&B sweep: entity/project/sweep_id')] = None,
           gist: Annotated[bool,
                           typer.Option('--gist',
                                        help='publish the CSV as a secret gist (needs GITHUB_TOKEN)')] = False,
           vs: Annotated[Optional[Tuple[str, str]], typer.Option(
               '--vs', help="only compare experiments A and B image by image: the paired difference of their TTA "
               "errors, its 95% interval, and where each alone is right")] = None):
    """Rank experiments: pivot by family and model, top N by TTA error × time with each one's interval, the
    better-and-faster-than-median subset, and a plot; or, with --vs A B, the paired difference of two."""
    from .report import collect, publish, versus
    ws = project(models)
    if vs: versus(collect(ws, wandb)[0], *vs, dataset=dataset, ws=ws)
    else: publish(ws, wandb, gist, dataset=dataset, top=top, constant=score_constant, agg=agg, name=name)


@app.command('lr-find')
@friendly
def lr_find(exp: Annotated[str, typer.Argument(help='an experiment name (see paddy list) or a path to a .py file')],
            set_: SETS = [], data: DATA = None):
    """fastai's learning-rate finder (valley and slide) on EXP's data and transforms: both suggestions printed, the
    plot and the curve in reports/lr-find-EXP-DATE-TIME.{png,json}."""
    from .train.rate import find_rate
    from .train.settings import Settings
    plain_logs()
    typer.echo(find_rate(exp, set_, Settings(data=None if data is None else str(data))))


@app.command()
@friendly
def curves(runs: Annotated[Optional[List[str]], typer.Argument(
               metavar='[RUN]...', help='runs in models/, finished or stopped (default: every run with a history)')]
           = None,
           models: MODELS = None,
           out: Annotated[Optional[Path], typer.Option(help='the PNG (default reports/curves-DATE-TIME.png)')] = None):
    """Learning curves: each run's training and validation loss and metrics by epoch, one colour per experiment, the
    frozen epoch hollow, into one PNG."""
    from .curves import draw
    typer.echo(f'wrote {draw(runs or [], project(models), out)}')


@app.command()
@friendly
def playbook(book: Annotated[str, typer.Argument(
                 metavar='NAME', help='a playbook in playbooks/ (road_to_the_top, quick, cpu), or a path to a .py '
                 'file')],
             data: DATA = None,
             hours: Annotated[Optional[float], typer.Option(
                 help='the time budget: the plan drops the final runs that would end past it')] = None,
             name: Annotated[Optional[str], typer.Option(
                 help='playbooks/NAME/ for its state and summary (default PLAYBOOK-DATASET)')] = None,
             dry_run: Annotated[bool, typer.Option('--dry-run', help='print the plan; train nothing')] = False,
             submit: Annotated[bool, typer.Option('--submit', help='submit the checked ensemble at the end')] = False,
             message: Annotated[Optional[str], typer.Option(
                 '--message', '-m', help='the submission message, with --submit')] = None,
             gpus: Annotated[Optional[str], typer.Option(help='GPU ids for its sweeps, as paddy sweep takes them')]
             = None,
             status: Annotated[bool, typer.Option('--status', help='say where the run stands, and do nothing')]
             = False):
    """Road to the Top in one command: check the data, screen the candidates on a small copy, rank them, train the top
    ones at full size within --hours, ensemble them and check (and with --submit, submit) the CSV. Run it again after
    a stop and it goes on from the first unfinished stage, never retraining a finished run."""
    from .playbook import play, progress
    from .stops import stoppable
    if status: return typer.echo(progress(book, data, name))
    if submit and not message: raise PaddyError("--submit needs a message: -m 'what is in it'")
    from .kaggle.lint import check_file
    from .kaggle.submit import upload
    plain_logs()
    try:
        with stoppable():
            play(book, data, hours, name, dry_run, message if submit else None, gpus, check=check_file,
                submit=lambda csv, msg, d: str(upload(csv, msg, data=d)['ref']))
    except KeyboardInterrupt:
        typer.echo(f'paddy playbook: stopped; `paddy playbook {book}` with the same options goes on', err=True)
        raise typer.Exit(130)


@app.command('list')
@friendly
def list_():
    "Show every experiment in experiments/ as a table."
    from .spec import table
    typer.echo(table())


@app.command()
@friendly
def demo(set_: Annotated[List[str], typer.Option('--set', help='override a field of every demo experiment')] = [],
         data_only: Annotated[bool, typer.Option(
             '--data-only', help='only lay the digits out in data/demo/, for your own runs or sweeps')] = False):
    "Run the whole pipeline offline on scikit-learn's digits and print validation and test accuracy."
    from .demo import demo
    plain_logs()
    demo(overrides=set_, data_only=data_only)


kaggle_app = typer.Typer(no_args_is_help=True, rich_markup_mode='rich',
                         help="Train on Kaggle's GPUs: push a sweep as a notebook, ask how it does, pull its runs "
                              "back.")
app.add_typer(kaggle_app, name='kaggle')


@kaggle_app.command('run')
@friendly
def kaggle_run(exps: Annotated[Optional[List[str]], typer.Argument(help='experiment names in experiments/')] = None,
               repeat: Annotated[int, typer.Option(
                   '--repeat', help='runs of each experiment (new splits only where seed = None)')] = 1,
               set_: SETS = [],
               accelerator: Annotated[str, typer.Option('--accelerator', help="Kaggle's GPU: " + ', '.join(GPUS))]
               = ACCELERATOR,
               title: Annotated[Optional[str], typer.Option(
                   '--title', help="the notebook's title, which names it (default: paddy EXP…)")] = None,
               fit_memory: Annotated[Optional[float], typer.Option(
                   '--fit-memory', help="GB of the GPU's memory: each run raises accum until it fits (15 for a T4)")]
               = None,
               hours: Annotated[float, typer.Option(
                   '--hours', help="the session's time limit: the kernel starts no run that would end past it")] = 12.0,
               dry_run: Annotated[Optional[Path], typer.Option(
                   '--dry-run', help='write the dataset and kernel folders to DIR and push nothing')] = None,
               playbook: Annotated[Optional[str], typer.Option(
                   '--playbook', help='run this playbook in the kernel instead, going on from what was pulled')]
               = None):
    """Push paddy (as a private dataset, when it changed) and a kernel that runs `paddy sweep EXP… --repeat N` (or
    `paddy playbook NAME`) on Kaggle's GPU."""
    from .kaggle.remote import push
    push(exps or [], repeat, set_, accelerator, title, dry_run, fit_memory=fit_memory, hours=hours, playbook=playbook)


@kaggle_app.command('status')
@friendly
def kaggle_status(kernel: KERNEL = None):
    "The kernel's state in one line: queued, running, complete or error."
    from .kaggle.remote import kernel_status
    typer.echo(kernel_status(kernel))


@kaggle_app.command('pull')
@friendly
def kaggle_pull(kernel: KERNEL = None,
                models: Annotated[bool,
                                  typer.Option('--models',
                                               help='also the exported .pkl models, which are large')] = False,
                data: DATA = None):
    """Bring a finished kernel's runs into models/ and preds/, where results, report and ensemble take them; never
    overwrites."""
    from .kaggle.remote import pull
    pull(kernel, models, data)


if __name__ == '__main__': app()
