"""The one place paddy talks to Kaggle: the real kaggle 2.x client, authenticated, with its failures as one line."""
import contextlib, io, os
from difflib import get_close_matches

from ..data import COMPETITION
from ..errors import PaddyError

NO_CREDENTIALS = ("no Kaggle credentials: on kaggle.com open Settings → API → Generate New Token and save the token to "
                  "~/.kaggle/access_token (or set KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY)")


def page(comp: str, tab: str) -> str: return f'https://www.kaggle.com/competitions/{comp}/{tab}'
def rules_url(comp: str) -> str: return page(comp, 'rules')


def quietly():
    "kaggle prints its sign-in help to stdout, even on import; paddy says it in one line instead."
    return contextlib.redirect_stdout(io.StringIO())


def api():
    "An authenticated `KaggleApi` that honours `KAGGLE_API_ENVIRONMENT` (e.g. `TEST`: a server on localhost:7777)."
    with quietly():
        from kaggle.api.kaggle_api_extended import KaggleApi
    from kagglesdk import KaggleClient
    from kagglesdk.kaggle_env import get_env

    class Api(KaggleApi):
        def build_kaggle_client(self):
            # kaggle 2.2.5 hard-codes PROD here (unless argv has --local etc.), although kagglesdk reads
            # KAGGLE_API_ENVIRONMENT; without this a test server could never be reached through the real client.
            if os.environ.get('KAGGLE_API_ENVIRONMENT', 'PROD') in ('PROD', 'LOCALHOST'):
                return super().build_kaggle_client()
            c = self.config_values
            return KaggleClient(env=get_env(), username=c.get(self.CONFIG_NAME_USER),
                                password=c.get(self.CONFIG_NAME_KEY),
                                api_token=c.get(self.CONFIG_NAME_TOKEN),
                                response_processor=self.get_response_processor())

    a = Api()
    a.args = [x for x in a.args if x not in ('--verbose', '-v')]  # VERBOSE=1 would make the client print auth headers
    with kaggle_errors(), quietly():
        try: a.authenticate()
        except SystemExit: raise PaddyError(NO_CREDENTIALS) from None
    return a


def endpoint() -> str:
    from kagglesdk.kaggle_env import get_endpoint, get_env
    return get_endpoint(get_env())


@contextlib.contextmanager
def kaggle_errors(comp: str = COMPETITION, thing: str | None = None):
    """Turn the client's HTTP and network failures into one line that names the fix; never echo credentials. A 403 or
    404 is about `comp` (its rules, its name) unless the call was about `thing`, such as 'kernel you/x'."""
    import requests
    try: yield
    except requests.HTTPError as e:
        code = getattr(e.response, 'status_code', None)
        if code == 401: msg = f"Kaggle rejected your credentials (401): {NO_CREDENTIALS.split(': ', 1)[1]}"
        elif code in (403, 404) and thing:
            msg = (f"Kaggle {'refused access to' if code == 403 else 'has no'} {thing} ({code}): check its name "
                   "(owner/slug, as in its URL) and that it is yours")
        elif code == 403:
            msg = (f"Kaggle refused access to {comp} (403): accept the competition's rules at {rules_url(comp)}, then "
                   "run this again")
        elif code == 404:
            close = get_close_matches(comp, [COMPETITION], n=1)
            hint = (f"did you mean {close[0]}?" if close
                    and close[0] != comp else "use the slug from the competition's URL")
            msg = f"Kaggle has no competition '{comp}' (404): {hint}"
        else:
            msg = (f"Kaggle answered {code}: {str(e).splitlines()[0] if str(e) else 'no reason given'}; "
                   "try again later")
        raise PaddyError(msg) from None
    except requests.RequestException as e:
        raise PaddyError(f"could not reach Kaggle at {endpoint()} ({type(e).__name__}): check the network "
                         "and try again") from None
    except ValueError as e:  # the client's own checks (a bad slug, a refused kernel), already worded for people
        if thing is None: raise
        raise PaddyError(f"Kaggle: {str(e).splitlines()[0].split('. ')[0]}: check the name of the {thing}") from None


def download_zip(comp: str, folder) -> str:
    "Download `comp`'s files as one zip into `folder` with the client's progress bar (it resumes a partial file)."
    a = api()
    with kaggle_errors(comp):
        a.competition_download_files(comp, path=str(folder), quiet=False)
    zips = sorted(p for p in os.listdir(folder) if p.endswith('.zip'))
    if not zips:
        raise PaddyError(f"Kaggle sent no zip for {comp} into {folder}: try again, or download it by hand from "
                         f"{page(comp, 'data')}")
    return os.path.join(folder, zips[0])


def submit(csv, message: str, comp: str) -> dict:
    "Upload `csv` as a submission; returns the server's `ref` and `message`."
    a = api()
    with kaggle_errors(comp):
        r = a.competition_submit(str(csv), message, comp, quiet=True)
    if r.message == a.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE:
        raise PaddyError(f"the upload of {csv} to Kaggle failed, so nothing was submitted: try again")
    return {'ref': r.ref, 'message': r.message}


def submission_pages(kaggle_api, comp: str):
    """Each page of your submissions to `comp`, following `next_page_token` as the service pages (it ignores a page
    number and the page size: kaggle-cli #832, #899) until it sends none, repeats one, or a page brings nothing new."""
    from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest
    from kagglesdk.competitions.types.competition_enums import SubmissionGroup, SubmissionSortBy
    token, tokens, seen = '', set(), set()
    with kaggle_api.build_kaggle_client() as k:
        while True:
            req = ApiListSubmissionsRequest()
            req.competition_name, req.page_token = comp, token
            req.group, req.sort_by = SubmissionGroup.SUBMISSION_GROUP_ALL, SubmissionSortBy.SUBMISSION_SORT_BY_DATE
            r = k.competitions.competition_api_client.list_submissions(req)
            new = [s for s in r.submissions or [] if s.ref not in seen]
            if not new: return
            seen |= {s.ref for s in new}
            yield new
            token = r.next_page_token
            if not token or token in tokens: return
            tokens.add(token)


def scores(comp: str) -> list[dict]:
    "Your submissions to `comp` with their leaderboard scores, newest first: every one of them, however many."
    kaggle_api = api()
    with kaggle_errors(comp): subs = [s for page in submission_pages(kaggle_api, comp) for s in page]
    return [dict(ref=s.ref, date=s.date, file=s.file_name, description=s.description, status=s.status.name.lower(),
                 public_score=s.public_score or None, private_score=s.private_score or None) for s in subs]
