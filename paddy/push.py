"""`paddy push`: an export folder to a Hugging Face Hub model repo, with huggingface_hub's own client and token."""
import json
from pathlib import Path

from .errors import PaddyError


def kind(folder: Path) -> str:
    "'export' or 'ensemble' for a folder `paddy export` wrote; anything else is refused in one line."
    for name, what in (('config.json', 'paddy-export'), ('ensemble.json', 'paddy-ensemble')):
        f = folder / name
        if f.is_file():
            try: fmt = json.loads(f.read_text()).get('format')
            except ValueError: fmt = None
            if fmt == what: return what.removeprefix('paddy-')
    raise PaddyError(f"{folder} is not a paddy export (no config.json or ensemble.json of paddy's): create one "
                     "with `paddy export RUN`")


def push(folder: Path, repo: str, private: bool = False, api=None) -> str:
    """Create model repo `repo` where missing (`private` if asked) and upload export `folder` to it; `api` is an
    `HfApi` (a stand-in in tests). The token is wherever huggingface_hub looks: HF_TOKEN, or `hf auth login`'s."""
    folder = Path(folder)
    if not folder.is_dir(): raise PaddyError(f"no folder {folder}: give an export folder, e.g. exports/RUN")
    what = kind(folder)
    if api is None:
        from huggingface_hub import HfApi
        api = HfApi()
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError
    try:
        url = api.create_repo(repo, private=private, exist_ok=True, repo_type='model')
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type='model',
                          commit_message=f'paddy: {what} {folder.name}')
    except LocalTokenNotFoundError:
        raise PaddyError("no Hugging Face token: run `hf auth login` or set HF_TOKEN, then push again") from None
    except HfHubHTTPError as e:
        raise PaddyError(f"the hub refused the push to {repo}: {' '.join(str(e).split())[:200]}") from None
    except Exception as e:  # no network, a proxy, a timeout: OSErrors, or the HTTP client's own (httpx's, by version)
        if not (isinstance(e, OSError) or type(e).__module__.split('.')[0].startswith(('httpx', 'requests'))): raise
        raise PaddyError(f"the hub cannot be reached ({type(e).__name__}): check the network and push again") from None
    print(f"pushed {folder} to {url}")
    return str(url)
