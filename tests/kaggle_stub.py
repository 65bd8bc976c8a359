"""A stand-in Kaggle on loopback port 7777, where kagglesdk's TEST environment points: it answers the endpoints that
download, submit, the submissions list, datasets, kernels and the GPU quota use, the way api.kaggle.com does, and
records what it received."""
import contextlib, fcntl, json, re, tempfile, threading
from email.utils import formatdate
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 7777
BASE = f'http://localhost:{PORT}'
API = re.compile(r'^/api/v1/[\w.]+/(\w+)$')  # /api/v1/<service>/<method>, as kagglesdk posts them
# `make test`'s two workers take turns on the one port: a stand-in holds this lock while it serves (the path is fixed
# at import, before any test moves the temporary folder)
LOCK = Path(tempfile.gettempdir()) / f'paddy-kaggle-stub-{PORT}.lock'


@contextlib.contextmanager
def offline():
    "The port with nothing on it for the block: a test of an unreachable Kaggle holds the turn no stand-in serves in."
    with open(LOCK, 'a') as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        yield


class StubKaggle(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, zip_bytes: bytes = b'', comp: str = 'paddy-disease-classification'):
        self.turn = open(LOCK, 'a')
        fcntl.flock(self.turn, fcntl.LOCK_EX)
        try: super().__init__(('127.0.0.1', PORT), Handler)
        except BaseException:
            self.turn.close()
            raise
        self.zip_bytes, self.comp = zip_bytes, comp
        self.calls: list[tuple[str, dict]] = []     # (endpoint, JSON body) of every API call
        self.auth: list[str | None] = []            # the Authorization header of every API call
        self.uploads: dict[str, bytes] = {}         # token → the bytes PUT to its upload URL
        self.submissions: list[dict] = []           # what CreateSubmission received
        self.fail: dict[str, tuple[int, str]] = {}  # endpoint → (status, message) to answer instead
        self.scores: dict[int, tuple[str, str]] = {}  # ref → (public, private) once "scored"
        self.blob_names: dict[str, str] = {}        # upload token → the file name StartBlobUpload gave
        self.datasets: dict[str, list[dict[str, bytes]]] = {}  # owner/slug → its versions' files, name → bytes
        self.kernels: dict[str, list[dict]] = {}    # owner/slug → what SaveKernel received, one per version
        self.state: dict[str, tuple[str, str | None]] = {}  # owner/slug → (KernelWorkerStatus name, failure message)
        self.outputs: dict[str, dict[str, bytes]] = {}  # owner/slug → its output files, path → bytes
        self.logs: dict[str, str] = {}              # owner/slug → its log, as Kaggle keeps it
        self.push_error: str | None = None          # what SaveKernel answers in its `error` field instead of running
        # a new dataset version becomes the one kernels mount only after a while, and until then GetDatasetStatus
        # says READY of the one before it (issue 18, item 5): it turns current after this many status calls
        self.version_delay = 1
        self.current: dict[str, int] = {}           # owner/slug → the index of its current version
        self.pending: dict[str, int] = {}           # owner/slug → status calls left before its newest turns current
        self.mounted: dict[str, list[int]] = {}     # kernel → the paddy-lib version current at each push
        self.quota = dict(quotaRefreshTime='2026-11-30T00:00:00Z',
                          gpuQuota=dict(timeUsed='36000s', timeReserved='0s', totalTimeAllowed='108000s'))

    def endpoints(self): return [c[0] for c in self.calls]

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self):
        "Stop serving, but keep the turn: the port stays unanswered (Kaggle unreachable) until the test ends."
        self.shutdown()
        self.server_close()

    def __exit__(self, *exc):
        self.stop()
        self.turn.close()  # the other worker's stand-in may bind now


class Handler(BaseHTTPRequestHandler):
    server: StubKaggle

    def log_message(self, *args): pass

    def _send(self, status: int, body: bytes = b'', ctype: str = 'application/json', headers=()):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        for k, v in headers: self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj, status=200): self._send(status, json.dumps(obj).encode())

    def _body(self) -> bytes:
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':  # requests streams a file object this way
            out = b''
            while True:
                size = int(self.rfile.readline().strip().split(b';')[0], 16)
                chunk = self.rfile.read(size); self.rfile.readline()
                if not size: return out
                out += chunk
        return self.rfile.read(int(self.headers.get('Content-Length') or 0))

    def do_POST(self):
        s = self.server
        m = API.match(self.path)
        if not m: return self._json({'code': 404, 'message': 'Not found'}, 404)
        name, body = m.group(1), json.loads(self._body() or b'{}')
        s.calls.append((name, body)); s.auth.append(self.headers.get('Authorization'))
        if name in s.fail:
            status, msg = s.fail[name]
            return self._json({'code': status, 'message': msg}, status)
        if body.get('competitionName') not in (None, s.comp):
            return self._json({'code': 404, 'message': f"Competition '{body['competitionName']}' not found"}, 404)
        if name == 'DownloadDataFiles':  # like Kaggle: a redirect to a signed storage URL
            self.send_response(302); self.send_header('Location', f'{BASE}/storage/{s.comp}.zip?sig=x')
            self.send_header('Content-Length', '0'); self.end_headers()
        elif name in ('StartSubmissionUpload', 'StartBlobUpload'):
            token = f'blob-{len(s.uploads) + 1}'
            s.uploads[token], s.blob_names[token] = b'', body.get('fileName') or body.get('name', '')
            self._json({'token': token, 'createUrl': f'{BASE}/upload/{token}'})
        elif name in ('CreateDataset', 'CreateDatasetVersion'):
            ref = f"{body['ownerSlug']}/{body.get('slug') or body.get('datasetSlug')}"
            files = (body.get('body') or body).get('files', [])
            if (name == 'CreateDataset') == (ref in s.datasets):
                return self._json({'code': 400, 'message': f'{name} of {ref}'}, 400)
            if any(f['token'] not in s.uploads for f in files):
                return self._json({'code': 400, 'message': 'unknown blob'}, 400)
            s.datasets.setdefault(ref, []).append({s.blob_names[f['token']]: s.uploads[f['token']] for f in files})
            if name == 'CreateDataset': s.current[ref] = 0
            else: s.pending[ref] = s.version_delay
            self._json({'ref': ref, 'url': f'{BASE}/datasets/{ref}', 'status': 'Ok'})
        elif name in ('GetDatasetStatus', 'ListDatasetFiles'):
            ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
            if ref not in s.datasets: return self._json({'code': 404, 'message': f'dataset {ref} not found'}, 404)
            if name == 'GetDatasetStatus':
                if s.pending.get(ref, 0) > 0: s.pending[ref] -= 1
                else: s.current[ref] = len(s.datasets[ref]) - 1
                return self._json({'status': 'READY'})  # of the current version, which may be the one before
            self._json({'datasetFiles': [{'name': n} for n in s.datasets[ref][s.current[ref]]]})
        elif name == 'SaveKernel':
            ref = body['slug']
            if s.push_error: return self._json({'error': s.push_error})  # e.g. kaggle-cli's GPU session limit
            s.kernels.setdefault(ref, []).append(body)
            s.mounted.setdefault(ref, []).append(s.current.get(body.get('datasetDataSources', ['?'])[0]))
            missing = [d for d in body.get('datasetDataSources', []) if d not in s.datasets]
            s.state[ref] = ('QUEUED', None)
            self._json({'ref': f'/code/{ref}', 'url': f'{BASE}/code/{ref}', 'versionNumber': len(s.kernels[ref]),
                        'invalidDatasetSources': missing})
        elif name == 'GetKernel':
            ref = f"{body['userName']}/{body['kernelSlug']}"
            if ref not in s.kernels: return self._json({'code': 404, 'message': f'kernel {ref} not found'}, 404)
            self._json({'metadata': {'ref': ref, 'slug': body['kernelSlug'],
                                     'currentVersionNumber': len(s.kernels[ref])}, 'blob': {}})
        elif name in ('GetKernelSessionStatus', 'ListKernelSessionOutput'):
            ref = f"{body['userName']}/{body['kernelSlug']}"
            if ref not in s.kernels: return self._json({'code': 404, 'message': f'kernel {ref} not found'}, 404)
            if name == 'GetKernelSessionStatus':
                status, why = s.state[ref]
                return self._json({'status': status, **({'failureMessage': why} if why else {})})
            # a page of 20 files and a nextPageToken, as kaggle-cli's docs/kernels.md says `kernels output` pages
            # (default 20, max 200); a session stopped at its limit ends CANCEL_ACKNOWLEDGED, which tests set in
            # `state` (kagglesdk 0.1.38, KernelWorkerStatus)
            files, start = list(s.outputs.get(ref, {})), int(body.get('pageToken', '')[1:] or 0)
            self._json({'files': [{'url': f'{BASE}/output/{ref}/{f}', 'fileName': f} for f in files[start:start + 20]],
                        'log': s.logs.get(ref, ''),
                        'nextPageToken': f'p{start + 20}' if start + 20 < len(files) else ''})
        elif name == 'GetAcceleratorQuotaStatistics': self._json(s.quota)
        elif name == 'CreateSubmission':
            if body.get('blobFileTokens') not in s.uploads:
                return self._json({'code': 400, 'message': 'unknown blob'}, 400)
            s.submissions.append(body)
            self._json({'message': 'Successfully submitted to Paddy Doctor: Paddy Disease Classification',
                        'ref': 1000 + len(s.submissions)})
        elif name == 'ListSubmissions':
            subs = [dict(ref=1000 + k, date='2026-11-26T12:00:00Z', description=b.get('submissionDescription', ''),
                         fileName='submission.csv', status='COMPLETE' if 1000 + k in s.scores else 'PENDING',
                         **(dict(zip(('publicScore', 'privateScore'), s.scores[1000 + k])) if 1000
                            + k in s.scores else {}))
                    for k, b in enumerate(s.submissions, 1)]
            # by token alone, as the service pages: `page` is "old-style pagination" and ignored (kaggle-cli PR #832),
            # `pageSize` is ignored and a page holds 50 (issue #899), and the answer carries nextPageToken, empty on
            # the last page (kagglesdk 0.1.38, ApiListSubmissionsResponse)
            start = int(body.get('pageToken', '')[1:] or 0)
            self._json({'submissions': subs[::-1][start:start + 50],
                        'nextPageToken': f'p{start + 50}' if start + 50 < len(subs) else ''})
        else: self._json({'code': 404, 'message': f'no endpoint {name} in the stub'}, 404)

    def do_GET(self):
        if self.path.startswith('/storage/'):
            return self._send(200, self.server.zip_bytes, 'application/zip',
                              [('Last-Modified', formatdate(usegmt=True)), ('Accept-Ranges', 'none')])
        if self.path.startswith('/output/'):  # a kernel's output file, as behind its signed URL
            owner, slug, f = self.path[len('/output/'):].split('/', 2)
            got = self.server.outputs.get(f'{owner}/{slug}', {})
            if f in got:
                return self._send(200, got[f], 'application/octet-stream', [('Last-Modified', formatdate(usegmt=True))])
        self._send(404)

    def do_PUT(self):
        token = self.path.rsplit('/', 1)[-1]
        if token not in self.server.uploads: return self._send(404)
        self.server.uploads[token] = self._body()
        self._json({})
