"""`paddy`: one thin command per library function; bad input ends in one line and exit code 2."""
import functools, sys, warnings
from pathlib import Path
from typing import List, Optional

import typer

from .data import COMPETITION
from .errors import PaddyError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Road to the Top for Paddy Doctor: experiments → train → TTA → ensemble → submission.")
warnings.filterwarnings('ignore', category=FutureWarning, module='torch.jit')  # noise from an import, not the user's doing

DATA = typer.Option(None, '--data', help='competition folder (else $PADDY_DATA, /kaggle/input/…, data/paddy-disease-classification)')


def pd_wide():
    import pandas as pd
    return pd.option_context('display.width', 250, 'display.max_colwidth', 60, 'display.max_rows', 500)


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
def train(exp: str = typer.Argument(..., help='experiment name in experiments/, or a path to a .py spec'),
          data: Optional[Path] = DATA,
          set_: List[str] = typer.Option([], '--set', help='override a field, keeping its type: --set epochs=1')):
    "Fine-tune EXP, export models/<run>.pkl + .json, and save TTA probabilities to preds/<run>.npz."
    from .spec import load
    from .train import train
    train(load(exp, set_), data=data)


@app.command()
@friendly
def predict(run: str, data: Optional[Path] = DATA, out: Optional[Path] = typer.Option(None, help='where to write (default preds/RUN.npz)')):
    "Recompute RUN's TTA probabilities from its exported model (e.g. on CPU, or on another test folder)."
    from .predict import predict
    predict(run, data=data, out=out)


@app.command()
@friendly
def ensemble(runs: List[str] = typer.Argument(None, help='runs or globs (default: every run with predictions)'),
             weights: Optional[str] = typer.Option(None, help='comma-separated, one per run: --weights 2,1,1'),
             vote: bool = typer.Option(False, '--vote', help='majority vote instead of averaging probabilities'),
             name: Optional[str] = typer.Option(None, help='submissions/NAME.csv (default ensemble-DATE-TIME)'),
             data: Optional[Path] = DATA):
    "Average the runs' test probabilities and write submissions/<name>.csv in sample_submission's order."
    from .ensemble import ensemble
    try: w = [float(x) for x in weights.split(',')] if weights else None
    except ValueError: raise PaddyError(f"--weights {weights}: give numbers separated by commas, e.g. --weights 2,1") from None
    ensemble(runs or (), weights=w, vote=vote, name=name, data=data)


COMP = typer.Option(COMPETITION, '--competition', '-c', help="the competition's slug, as in its URL")


@app.command()
@friendly
def download(competition: str = COMP, dest: Path = typer.Option(Path('data'), help='the files go to DEST/COMPETITION/')):
    "Download and unzip the competition's files once (inside a Kaggle notebook, use /kaggle/input/COMPETITION)."
    from .download import download
    download(competition, dest)


@app.command('check-submission')
@friendly
def check_submission(csv: Path, data: Optional[Path] = DATA):
    "Check CSV against sample_submission.csv: header, every id once and in its order, a known label on every row."
    from .check import check_submission
    from .data import find_data
    typer.echo(f'{csv}: {check_submission(csv, find_data(data))} rows, ready to submit')


@app.command()
@friendly
def submit(csv: Path, message: str = typer.Option(..., '--message', '-m', help='shown on the leaderboard page; say what is in it'),
           competition: str = COMP, data: Optional[Path] = DATA,
           again: bool = typer.Option(False, '--again', help='submit a file that was submitted before')):
    "Check CSV, submit it through the kaggle client, and append it with its runs to submissions/log.csv."
    from .submit import submit
    submit(csv, message, competition, data=data, again=again)


@app.command()
@friendly
def submissions(competition: str = COMP):
    "Your submissions: the log's runs and validation error beside the public and private scores (the log alone when offline)."
    from .submit import submissions
    with pd_wide(): typer.echo(submissions(competition).to_string(index=False, na_rep='', float_format=lambda x: f'{x:.5f}'))


@app.command('list')
@friendly
def list_():
    "Show every experiment in experiments/ as a table."
    from .spec import table
    typer.echo(table())


@app.command()
@friendly
def demo(set_: List[str] = typer.Option([], '--set', help='override a field of both demo experiments')):
    "Run the whole pipeline offline on scikit-learn's digits and print validation and test accuracy."
    from .demo import demo
    demo(overrides=set_)


if __name__ == '__main__': app()
