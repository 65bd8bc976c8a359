"""`paddy sweep --engine ray` on a real two-node Ray cluster on this machine, one fake GPU a node, started with
`ray start` as docs/cluster.md says and ended by the ids of those processes' groups: never `ray stop`, which ends every
Ray process on the host. Ray gives its nodes this host's address rather than 127.0.0.1; nothing leaves the machine."""
import os, re, shutil, signal, socket, subprocess, sys, tempfile, time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import TINY, make_comp
from paddy.sweep import stopped
from paddy.workspace import Workspace

pytestmark = pytest.mark.slow  # every test here trains in subprocesses: left out of make test-fast

RAY = Path(sys.executable).parent / 'ray'
FAST = dict(RAY_USAGE_STATS_ENABLED='0', OMP_NUM_THREADS='1',  # two runs at once share this machine's cores
            RAY_AUTH_MODE='disabled',  # loopback only; else a token in ~/.ray from an earlier Ray would turn it on
            RAY_health_check_period_ms='500', RAY_health_check_failure_threshold='3',  # a lost node is seen in ~2 s
            RAY_health_check_initial_delay_ms='0')
HEADER = re.compile(r'^=== (\S+) (.*) \(on node (\S+) \(.*\), GPU (\S+)\)$', re.M)
END = re.compile(r'^=== (\S+) exit (-?\d+) after', re.M)


def node(args: list, log: Path, env: dict, prefix=()) -> subprocess.Popen:
    "One `ray start --block` in its own process group, so that the group's id ends it and all it started."
    return subprocess.Popen([*prefix, str(RAY), 'start', '--num-cpus', '1', '--num-gpus', '1', '--disable-usage-stats',
                             *args, '--block'], stdout=open(log, 'w'), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def descendants(pid: int) -> list[int]:
    "Every process below `pid`, by their parent ids in /proc: Ray's workers and the runs they start, whatever group."
    parents = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try: fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError: continue  # ended as it was read
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def end(p: subprocess.Popen):
    "A node gone at once, as a machine that dies: its group and everything below it, SIGKILLed by their ids."
    below = descendants(p.pid)
    try: os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError: pass
    for pid in below:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    p.wait(timeout=30)


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    "A head and a worker node, as in docs/cluster.md, each with one (fake) GPU."
    logs, env = tmp_path_factory.mktemp('ray-logs'), {**os.environ, **FAST}
    env.pop('CUDA_VISIBLE_DEVICES')  # the tests' '' would hide the nodes' fake GPUs from Ray
    temp = tempfile.mkdtemp(prefix='ray', dir='/tmp')  # short: Ray's socket paths must fit in 107 bytes
    with socket.socket() as s:
        s.bind(('', 0))
        port = s.getsockname()[1]
    common = ['--temp-dir', temp]
    nodes = {'head': node(['--head', '--port', str(port), '--node-name', 'head', '--include-dashboard', 'false',
                           *common], logs / 'head.log', env)}
    try:
        deadline = time.time() + 60
        while not (m := re.search(r"--address='([^']+)'", (logs / 'head.log').read_text())):
            assert time.time() < deadline and nodes['head'].poll() is None, (logs / 'head.log').read_text()
            time.sleep(0.2)
        address = m.group(1)
        nodes['worker'] = node(['--address', address, '--node-name', 'worker', *common], logs / 'worker.log', env)
        yield dict(address=address, nodes=nodes, logs=logs, env=env, common=common, temp=temp)
    finally:
        for p in nodes.values(): end(p)
        shutil.rmtree(temp, ignore_errors=True)


def paddy_sweep(root: Path, *args, address: str) -> list[str]:
    return [sys.executable, '-m', 'paddy.cli', 'sweep', *args, '--data', str(root / 'comp'), '--engine', 'ray',
            '--address', address]


def epochs_saved(root: Path, run: str) -> int:
    import torch
    try: return torch.load(root / 'models' / f'{run}.state' / 'model.pth', weights_only=True)['epochs_done']
    except Exception: return 0  # not written yet, or caught as it is replaced


def attempts(log: Path) -> list[dict]:
    "Each start of a job in its log: when, the command, the node and the GPU; and when it ended (None: killed)."
    text, out = log.read_text(), []
    starts = list(HEADER.finditer(text))
    for i, m in enumerate(starts):
        upto = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        e = END.search(text, m.end(), upto)
        out.append(dict(start=datetime.fromisoformat(m[1]), cmd=m[2], node=m[3], gpu=m[4],
                        end=datetime.fromisoformat(e[1]) if e else None, rc=int(e[2]) if e else None))
    return out


@pytest.fixture(scope='module')
def swept(cluster, tmp_path_factory):
    """Two sweeps at once: `b`, one run that fails by itself; and `r`, two runs of 8 epochs, whose worker node is
    killed once its run there has saved an epoch. Then `r` started again, beside a sweep that a node without the
    shared disk stops."""
    root = tmp_path_factory.mktemp('ray-sweep')
    make_comp(root / 'comp', n=40, size=(96, 72))  # at 64 px, half a second an epoch: a kill lands mid-run
    (root / 'slow.py').write_text(TINY.replace('epochs = 1', 'epochs = 8').replace('_size = 32', '_size = 64'))
    (root / 'broken.py').write_text(TINY.replace('test_convnext', 'no_such_arch'))
    env, address = cluster['env'], cluster['address']
    b = subprocess.Popen(paddy_sweep(root, 'broken.py', '--name', 'b', address=address), cwd=root, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while 'submit broken-1' not in (line := b.stdout.readline()):  # it takes a GPU first: r's runs then share
        assert line and time.time() < deadline, line + b.communicate()[0]
    r_cmd = paddy_sweep(root, 'slow.py', '--repeat', '2', '--name', 'r', address=address)
    r = subprocess.Popen(r_cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # the loop ends when `r` does: its deadline only guards a hang. Beside other tests on 2 cores a run's start on the
    # worker (a fresh interpreter importing torch) took over a minute, and a 60 s deadline ended the watch too early
    lost, t0 = None, time.time()
    while lost is None and time.time() < t0 + 300 and r.poll() is None:
        time.sleep(0.2)
        runs = stopped('r', Workspace(root))
        for job in ('slow-1', 'slow-2'):
            log = root / 'sweeps' / 'r' / f'{job}.log'
            on = attempts(log) if log.exists() else []
            if on and on[-1]['node'] == 'worker' and job in runs and epochs_saved(root, runs[job]) >= 1:
                end(cluster['nodes']['worker'])  # the node dies mid-run, as a machine does
                lost = dict(job=job, run=runs[job], at=datetime.now())
                break
    watched = time.time() - t0
    r_out, b_out = r.communicate(timeout=180)[0], line + b.communicate(timeout=120)[0]
    logs = {f'{s}/{f.stem}': f.read_text() for s in ('r', 'b') for f in sorted((root / 'sweeps' / s).glob('*.log'))}
    again = subprocess.Popen(r_cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    alone = subprocess.Popen([sys.executable, '-m', 'paddy.cli', 'sweep', 'slow.py', '--name', 'n', '--data',
                              str(root / 'comp'), '--engine', 'ray'], cwd=root, text=True,
                             env={**env, 'CUDA_VISIBLE_DEVICES': '', 'RAY_TMPDIR': cluster['temp']},  # not /tmp/ray
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    island = stranger(root, cluster)  # while `again` runs, which needs no cluster: it has nothing to run
    return dict(root=root, lost=lost, watched=watched, r=r.returncode, r_out=r_out, b=b.returncode, b_out=b_out,
                logs=logs, again=finished_run(again), alone=finished_run(alone), island=island)


def finished_run(p: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def stranger(root: Path, cluster: dict) -> subprocess.CompletedProcess | None:
    """A third node whose view of the project folder is its own (a tmpfs mounted over it, in a mount namespace of its
    own), as a machine without the shared disk is, and a sweep started beside it; None where there are no mount
    namespaces (not root)."""
    if subprocess.run(['unshare', '--mount', 'true'], capture_output=True).returncode: return None
    env, log = cluster['env'], cluster['logs'] / 'island.log'
    island = node(['--address', cluster['address'], '--node-name', 'island', *cluster['common']], log, env,
                  prefix=['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                          f'mount -t tmpfs none {root} && exec "$0" "$@"'])
    try:
        deadline = time.time() + 30
        while 'Ray runtime started' not in log.read_text():
            assert time.time() < deadline and island.poll() is None, log.read_text()
            time.sleep(0.2)
        return subprocess.run(paddy_sweep(root, 'slow.py', '--name', 'c', address=cluster['address']), cwd=root,
                              env=env, capture_output=True, text=True, timeout=120)
    finally: end(island)


def test_both_nodes_ran_jobs_each_on_one_gpu_and_never_two_at_once_on_a_node(swept):
    assert swept['lost'], (f"no run reached the worker node with an epoch saved in {swept['watched']:.0f} s:\n"
                           f"{swept['r_out']}")
    runs = [dict(a, job=job) for job in swept['logs'] for a in attempts(swept['root'] / 'sweeps' / f'{job}.log')]
    assert {a['node'] for a in runs} == {'head', 'worker'}, runs
    assert all(re.fullmatch(r'\d+', a['gpu']) for a in runs), [a['gpu'] for a in runs]  # exactly one id each
    for name in ('head', 'worker'):
        on = sorted((a for a in runs if a['node'] == name), key=lambda a: a['start'])
        for a, b in zip(on, on[1:]):
            assert (a['end'] or swept['lost']['at']) <= b['start'], f'{a["job"]} and {b["job"]} overlap on {name}'


def test_a_job_whose_node_died_is_resumed_on_the_other_node(swept):
    assert swept['r'] == 0, swept['r_out']
    lost = swept['lost']
    tries = attempts(swept['root'] / 'sweeps' / 'r' / f"{lost['job']}.log")
    assert [t['node'] for t in tries] == ['worker', 'head'], tries
    assert tries[0]['end'] is None and '--resume' not in tries[0]['cmd']  # killed with its node
    assert f"--resume {lost['run']}" in tries[1]['cmd'] and tries[1]['rc'] == 0
    resumed = re.search(rf"{lost['run']}: resuming after (\d+) of 8 epochs", swept['logs'][f"r/{lost['job']}"])
    assert resumed and int(resumed[1]) >= 1, swept['logs'][f"r/{lost['job']}"]  # from its saved epoch, not anew
    assert (swept['root'] / 'models' / f"{lost['run']}.json").exists()
    assert re.search(rf"\[\d/2\] {lost['job']}: error [\d.]+, {lost['run']}, on node head .*, resumed", swept['r_out'])


def test_a_job_that_fails_by_itself_runs_once_and_is_reported(swept):
    assert swept['b'] == 2, swept['b_out']
    assert len(attempts(swept['root'] / 'sweeps' / 'b' / 'broken-1.log')) == 1
    assert '[0/1] broken-1: FAILED (exit 2)' in swept['b_out'] and '1 of 1 runs failed (broken-1)' in swept['b_out']


def test_the_same_sweep_started_again_submits_nothing(swept):
    again = swept['again']
    assert again.returncode == 0, again.stdout + again.stderr
    assert '2 runs, 2 already finished, 0 to go' in again.stdout and 'submit' not in again.stdout
    logs = {f'r/{f.stem}': f.read_text() for f in sorted((swept['root'] / 'sweeps' / 'r').glob('*.log'))}
    assert logs == {k: v for k, v in swept['logs'].items() if k.startswith('r/')}


def test_a_node_that_does_not_share_the_disk_is_named(swept):
    r, root = swept['island'], swept['root']
    if r is None: pytest.skip('no mount namespaces here (needs root)')
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stdout + r.stderr
    assert re.search(rf"node island \(.*\) does not see {root} as this machine does: .*same path", r.stderr), r.stderr
    assert not (root / 'sweeps' / 'c' / 'sweep.json').exists()  # nothing recorded for a sweep that could not start


def test_ray_on_this_machine_alone_without_a_gpu_says_so(swept):
    "No --address: Ray is started for this sweep alone; on a machine with no GPU that is one line."
    r = swept['alone']
    assert r.returncode == 2 and r.stderr.strip() == (
        'paddy: error: Ray sees no GPU on this machine, and each run of --engine ray takes one: leave out --engine ray '
        'to sweep here, or give the --address of a cluster with GPUs'), r.stdout + r.stderr
