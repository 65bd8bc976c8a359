"""Publish a report's CSV as a secret GitHub gist, an optional extra that needs a token and nothing else."""
from pathlib import Path

from . import environ
from .errors import PaddyError

NEEDS = ("--gist needs a GitHub token with the gist scope in GITHUB_TOKEN (github.com → Settings → Developer "
         "settings → Tokens)")


def token() -> str:
    t = environ.github()[0]
    if not t: raise PaddyError(NEEDS)
    return t


def publish(files: list[Path], description: str) -> str:
    "Upload `files` as one secret gist and return its URL."
    import requests
    api = environ.github()[1]
    body = dict(description=description, public=False,
                files={Path(f).name: {'content': Path(f).read_text()} for f in files})
    try: r = requests.post(f'{api}/gists', json=body, timeout=30,
                           headers={'Authorization': f'Bearer {token()}', 'Accept': 'application/vnd.github+json'})
    except requests.RequestException as e:
        raise PaddyError(f"could not reach GitHub at {api} ({type(e).__name__}): the report is still in "
                         f"{files[0].parent}/") from None
    if r.status_code in (401, 403):
        raise PaddyError(f"GitHub refused the token ({r.status_code}): {NEEDS.split(' needs ', 1)[1]}")
    if r.status_code != 201:
        raise PaddyError(f"GitHub answered {r.status_code} to the gist: the report is still in {files[0].parent}/")
    return r.json()['html_url']
