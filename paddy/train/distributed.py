"""Several processes, one run: Hugging Face Accelerate through fastai's `distrib_ctx`. Each process trains on its share
of every epoch's batches; the main one alone saves, exports, predicts and writes the run's files."""
import contextlib, os, subprocess, sys

from .. import compat, stops


def world() -> int: return int(os.environ.get('WORLD_SIZE', 1))


def is_main() -> bool: return int(os.environ.get('RANK', 0)) == 0


def start():
    "Join the process group that `accelerate launch` (or torchrun, or SLURM through them) described in the environment."
    if world() > 1:
        import torch
        from accelerate import PartialState
        # gloo on CPU, NCCL on CUDA; fastai's Accelerator then shares it
        PartialState(cpu=not torch.cuda.is_available())
        if not is_main(): quiet()


def quiet():
    """The other processes say nothing: the main one prints every line once (warnings, the item cache, the epochs).
    A failure still shows: the launcher reports the process that failed, and the main one fails alike."""
    import warnings
    warnings.filterwarnings('ignore')
    sys.stdout = sys.stderr = open(os.devnull, 'w')


def shared(value):
    "The main process's `value`, on every process: one run name, however many draw one."
    if world() == 1: return value
    import torch.distributed as dist
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def training(learn):
    "fastai's `distrib_ctx` (DistributedDataParallel, a DistributedDL per loader) when launched as several processes."
    if world() == 1:
        yield learn
        return
    import torch
    if not torch.cuda.is_available(): compat.distributed_broadcast(_broadcast_cpu)
    from accelerate.utils import DistributedDataParallelKwargs
    # fastai keeps the whole timm model as the body but calls only its features, so some parameters (convnext's head
    # norm) never get a gradient, which DDP refuses unless told to look for them
    unused = DistributedDataParallelKwargs(find_unused_parameters=True)
    stops.quiet('ddp strides')  # DDP's note that a conv's gradient strides differ from its bucket's: 8 lines an epoch
    try:
        with learn.distrib_ctx(sync_bn=torch.cuda.is_available(), kwargs_handlers=[unused]):
            yield learn  # SyncBatchNorm: GPUs alone
        # every process leaves the group together and tears it down: a process that exits with gloo's threads still up
        # aborts, and the launcher then stops the main one mid-way through its predictions
        from accelerate import PartialState
        torch.distributed.barrier()
        PartialState().destroy_process_group()
    finally:
        # the rest (validate, export, TTA) is the main process's alone, and fastai gathers predictions from every
        # process whenever WORLD_SIZE says there are several, even outside distrib_ctx
        os.environ['WORLD_SIZE'] = '1'


def _broadcast_cpu(self, t, rank):
    """fastai 2.8's DistributedDL sends each epoch's shuffled order through a CUDA tensor, for NCCL; gloo takes it on
    CPU."""
    import torch
    t = torch.LongTensor(t)
    torch.distributed.broadcast(t, rank)
    return t.tolist()


def launch(argv: list[str], processes: int) -> int:
    "`accelerate launch --multi_gpu --num_processes N -m paddy ARGV`: what `paddy train --processes N` stands for."
    # accelerate's own --cpu launches one process (several need mpirun); --multi_gpu starts torchrun, which works
    # on CPU too
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--num_processes', str(processes), '--num_machines', '1',
           '--mixed_precision', 'no', '--dynamo_backend', 'no', '--multi_gpu', '-m', 'paddy', *argv]
    print('launching:', ' '.join(cmd[2:]), file=sys.stderr)
    return subprocess.call(cmd)
