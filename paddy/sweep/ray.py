"""The Ray engine (`paddy sweep … --engine ray`, from `pip install 'paddy[ray]'`): each job one Ray task that asks for
one GPU, on whichever node of the cluster has one free. The task runs the job's `paddy train` on its node as the local
engine does, in the same project folder, which every node sees at the same path. Ray retries a task whose node died,
and the retry resumes the run from its last saved epoch; a run that fails by itself is not retried."""
import os, socket, sys, uuid
from pathlib import Path

from ..data import find_data
from ..compat import ray_auto_address
from ..errors import PaddyError
from .jobs import execute

RETRIES = 3  # a job whose node was lost this often points at the cluster, not at bad luck
LET_GO = 120  # seconds a retried job waits for its lost node's `paddy train` to stop, should that node live on
DOCS = 'docs/cluster.md'


def imported():
    os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')  # paddy's calls never report to Ray's servers
    try: import ray
    except ImportError:
        raise PaddyError("--engine ray needs Ray, which is not installed: pip install 'paddy[ray]'") from None
    return ray


# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server, as Ray's head (GCS) is, answers with its own
# SETTINGS frame at once, before any call; anything else there would have `ray.init` retry for minutes
H2_HELLO = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def reachable(address: str, said: str | None = None):
    "A HOST:PORT where no Ray head answers is one line now, not Ray's minutes of retries."
    said = said or address
    host, _, port = address.rpartition(':')
    if not host or not port.isdigit():
        raise PaddyError(f"--address {said}: give auto, or the head node's HOST:PORT as `ray start --head` prints "
                         "it, e.g. 10.0.0.1:6379")
    try:
        with socket.create_connection((host, int(port)), timeout=5) as c:
            c.sendall(H2_HELLO)
            reply = c.recv(9)
    except TimeoutError: reply = b''
    except OSError as e:
        raise PaddyError(f"--address {said}: no Ray cluster answers at {address} ({e.strerror or e}): start its head "
                         f"with `ray start --head --port {port}` ({DOCS})") from None
    if len(reply) < 4 or reply[3] != 0x4:  # not an HTTP/2 SETTINGS frame: no gRPC server, so no Ray head
        raise PaddyError(f"--address {said}: something answers at {address}, but not a Ray head: give the address "
                         f"that `ray start --head` printed (port 6379 unless --port), not the dashboard's ({DOCS})")


def resolve(address: str | None) -> str:
    """What `ray.init` is given: `local` (Ray started for this sweep alone) for no --address; for `auto`, the cluster
    in RAY_ADDRESS or the latest `ray start` on this machine, as Ray finds it, checked to answer (a stale record would
    have Ray retry for minutes)."""
    if address is None: return 'local'
    if address != 'auto':
        reachable(address)
        return address
    lookup = ray_auto_address()
    if lookup is None: return 'auto'  # another Ray: let it look
    try: found = lookup('auto')
    except ConnectionError as e:  # several clusters here, say
        raise PaddyError(f"--address auto: {str(e).strip().splitlines()[0]}: give the head node's HOST:PORT "
                         f"({DOCS})") from None
    if not found:
        raise PaddyError(f"--address auto: no Ray cluster was started on this machine: start one with `ray start "
                         f"--head` ({DOCS}), or give the head node's HOST:PORT")
    reachable(found, 'auto')
    return found


def node_task(s, job: str, root: str, data: str):
    "One job, on the node Ray picked: in the project folder there, on the GPU Ray gave it."
    import ray
    os.chdir(root)  # the same path on every node: what `paddy train` reads and writes is relative to it
    os.environ['PADDY_DATA'] = data  # where the driver found it, not where this node's own setting says
    me = ray.get_runtime_context().get_node_id()
    node = next((n for n in ray.nodes() if n['NodeID'] == me), {})
    gpus = [str(g) for g in ray.get_gpu_ids()]
    where = f"node {node.get('NodeName', me[:8])} ({socket.gethostname()}), GPU {','.join(gpus)}"
    out = execute(s, job, ','.join(gpus), int(node.get('Resources', {}).get('GPU', 1)), where,
                  wait=LET_GO)  # it always starts, or finds the job taken or done: Ray's stop comes as an interrupt
    return {**out, 'node': me}


def probe(marker: str, token: str, python: str, data: str):
    "What a node sees of the shared disk: the driver's marker, its own marker written back, the venv, the data."
    import ray
    me, m = ray.get_runtime_context().get_node_id(), Path(marker)
    try: seen = m.read_text() == token
    except OSError: seen = False
    wrote = False
    if seen:
        try: (m.parent / f'{me}.seen').write_text(token); wrote = True
        except OSError: pass
    return dict(node=me, host=socket.gethostname(), seen=seen, wrote=wrote, python=Path(python).exists(),
                data=(Path(data) / 'train.csv').is_file())


class Ray:
    "A Ray cluster's GPUs (`--address`: auto, HOST:PORT, or none to start Ray on this machine alone), one run each."

    def __init__(self, address: str | None = None):
        self.address, self.ray = address, imported()
        self.target = resolve(address)

    def open(self, s) -> str:
        ray = self.ray
        try: ray.init(address=self.target, logging_level='ERROR', log_to_driver=False)
        except ConnectionError as e:  # it answered the port, but it is not a Ray head
            raise PaddyError(f"--address {self.address}: {str(e).splitlines()[0]}: give the HOST:PORT that "
                             f"`ray start --head` printed ({DOCS})") from None
        nodes = [n for n in ray.nodes() if n['Alive'] and n['Resources'].get('GPU')]
        if not nodes:
            if self.address is None:
                raise PaddyError("Ray sees no GPU on this machine, and each run of --engine ray takes one: leave out "
                                 "--engine ray to sweep here, or give the --address of a cluster with GPUs")
            raise PaddyError(f"the Ray cluster at {self.address} has no GPUs, and each run of --engine ray takes one: "
                             "start its nodes with theirs (ray start … --num-gpus N), or leave out --engine ray")
        self.data = str(find_data(s.args['data']).resolve())
        self.shared(s, nodes)
        gpus = sum(int(n['Resources']['GPU']) for n in nodes)
        return (f"Ray cluster {ray.get_runtime_context().gcs_address}: {len(nodes)} node{'s' * (len(nodes) != 1)}, "
                f"{gpus} GPU{'s' * (gpus != 1)}, one run per GPU")

    def shared(self, s, nodes: list[dict]):
        """Check that every node with a GPU sees this project as this machine does: each reads a marker written
        here and writes one back, where this machine reads it; each has this Python and the data."""
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On
        token, folder = uuid.uuid4().hex, (s.folder / '.disk').resolve()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / 'marker').write_text(token)
        check = ray.remote(num_cpus=0, max_retries=0)(probe)
        refs = {check.options(scheduling_strategy=On(n['NodeID'], soft=False)).remote(
            str(folder / 'marker'), token, sys.executable, self.data): n for n in nodes}
        try:
            ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=60)
            for ref in late:
                raise PaddyError(f"node {refs[ref]['NodeName']} did not answer within a minute: check it with "
                                 "`ray status`, or stop it and start the sweep again")
            for ref in ready:
                n, r = refs[ref], ray.get(ref)
                name = f"node {n['NodeName']} ({r['host']})"
                back = (folder / f"{r['node']}.seen").is_file()
                if not (r['seen'] and r['wrote'] and back):
                    raise PaddyError(f"{name} does not see {Path.cwd()} as this machine does: every node needs the "
                                     f"project (models/, preds/, sweeps/) and the data at the same path, on a shared "
                                     f"disk ({DOCS})")
                if not r['python']:
                    raise PaddyError(f"{name} has no {sys.executable}: make the same venv at the same path on every "
                                     f"node ({DOCS})")
                if not r['data']:
                    raise PaddyError(f"{name} does not see the data {self.data}: put it on the shared disk, at the "
                                     f"same path on every node ({DOCS})")
        finally:
            for f in folder.iterdir(): f.unlink()
            folder.rmdir()

    def close(self):
        if self.ray.is_initialized(): self.ray.shutdown()  # this driver only: the cluster goes on

    def run(self, s, todo: list[str], go, done) -> dict[str, int | None]:
        """Every job in `todo` that `go(job)` lets start, as a task, no more at a time than the cluster has GPUs, so
        that --hours is judged when a GPU frees; `done(job, outcome)` told of each. Ctrl-C cancels the tasks, each of
        which stops its `paddy train` with SIGTERM (keeping its last epoch), then goes on up."""
        ray = self.ray
        # max_calls=0: a worker may take job after job (Ray's default for GPU tasks is a new process each, to free
        # the GPU's memory; the task holds none, its `paddy train` child does, and exits), so it starts warm
        task = ray.remote(num_gpus=1, max_retries=RETRIES, retry_exceptions=False, max_calls=0)(node_task)
        root, waiting, running, codes = str(Path.cwd()), list(todo), {}, {}
        try:
            while waiting or running:
                free = max(1, int(ray.cluster_resources().get('GPU', 0))) - len(running)
                while waiting and free > 0:
                    job = waiting.pop(0)
                    if not go(job):
                        codes[job] = None
                        continue
                    running[task.remote(s, job, root, self.data)] = job
                    print(f'  submit {job} → {s.log(job)}', flush=True)
                    free -= 1
                if not running: continue
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    job = running.pop(ref)
                    try: out = ray.get(ref)
                    except ray.exceptions.RayError as e:  # its node lost RETRIES + 1 times, or Ray itself failed
                        out = dict(rc=-1, lost=str(e).strip().splitlines()[0][:200])
                    codes[job] = out.get('rc')
                    done(job, out)
        except KeyboardInterrupt:
            for ref in running: ray.cancel(ref)  # a KeyboardInterrupt in each task, which stops its paddy train
            if running: ray.wait(list(running), num_returns=len(running), timeout=90)
            raise
        return codes
