"""Every use of a private API of fastai, fastprogress, torch, Ray or Pillow, in one place. Each says why paddy needs it;
tests/test_compat.py fails when a release changes what paddy relies on, rather than paddy breaking silently."""
import contextlib


def fastprogress_plain():
    """fastprogress 1.x without its bars, into a file or pipe: it reads `stdout.isatty` without calling it, so it
    would write every bar update into a log, and each bar prints a `█` to test the terminal's encoding through the
    module's own `print`, which `NO_BAR` does not stop. Its epoch table goes through `WRITER_FN`, the builtin print."""
    import fastprogress.fastprogress as fp
    fp.NO_BAR = True
    fp.print = lambda *args, **kwargs: None


def distributed_broadcast(fn):
    """Make fastai's `DistributedDL` send each epoch's shuffled order with `fn`: fastai 2.8 sends it through a CUDA
    tensor, for NCCL, and gloo on a CPU needs it on the host."""
    from fastai.distributed import DistributedDL
    DistributedDL._broadcast = fn


def dynamo_backends(debug: bool = False) -> list[str]:
    "torch.compile's backends (`debug`: its debugging ones too, such as aot_eager, which only traces)."
    import torch._dynamo
    return torch._dynamo.list_backends(exclude_tags=()) if debug else torch._dynamo.list_backends()


@contextlib.contextmanager
def compile_callbacks(start, end):
    "Call `start` and `end` as torch.compile starts and ends each compilation, while the block runs: its seconds."
    from torch._dynamo import callback_handler
    callback_handler.register_start_callback(start)
    callback_handler.register_end_callback(end)
    try: yield
    finally:
        callback_handler.remove_start_callback(start)
        callback_handler.remove_end_callback(end)


@contextlib.contextmanager
def uncompiled(model):
    """`model` (compiled in place by `nn.Module.compile`) without its compiled call while the block runs: what pickles
    into an export, and loads without a compiler. torch keeps that call in `_compiled_call_impl`."""
    compiled = model.__dict__.get('_compiled_call_impl')
    model._compiled_call_impl = None
    try: yield model
    finally: model._compiled_call_impl = compiled


def ray_auto_address():
    """Ray's own lookup of `auto` (RAY_ADDRESS, else the latest `ray start` here), which `ray.init` does not expose;
    None where this Ray has no such function."""
    try: from ray._private.services import canonicalize_bootstrap_address
    except ImportError: return None
    return canonicalize_bootstrap_address


def progress_state(*more: str) -> tuple:
    "What fastai's `ProgressCallback` leaves out of a pickled Learner, and `more`: a subclass's own unpicklable fields."
    from fastai.callback.progress import ProgressCallback
    return ProgressCallback._stateattrs + more


def skip_to(cb) -> int:
    "The epoch that fastai's `SkipToEpoch` callback skips to: a resumed run's first."
    return cb._skip_to


def plain_image(im):
    """Pillow image `im` as a plain `Image.Image`, as fastai's `load_image` makes one: a JPEG's own subclass would keep
    its type through fastai's transforms."""
    return im._new(im.im)
