"""`compile = True`: the model compiled in place by `torch.compile`, so its state dict, freezing and export are those of
the plain model, and the seconds spent compiling are counted apart from the fit."""
import contextlib, time

from ..errors import PaddyError
from ..spec import Experiment


def check_compile(exp: Experiment):
    "Raise when `exp.compile_backend` is not one of torch's."
    import torch._dynamo
    if not exp.compile: return
    if exp.compile_backend not in torch._dynamo.list_backends(exclude_tags=()):
        # torch's own list, without its debugging backends, and aot_eager, which the tests use
        named = ', '.join(b for b in torch._dynamo.list_backends() if b != 'inductor')
        raise PaddyError(f"{exp.name}: compile_backend='{exp.compile_backend}' is not a torch.compile backend: choose "
                         f"inductor (it makes the fast kernels), {named}, or aot_eager (it only traces)")


class Compiling:
    """The seconds torch spends compiling (forward graphs, and backward ones when first run) while registered, and the
    graphs it made: a recompile shows up as another graph."""
    def __init__(self):
        self.seconds, self.graphs, self.started = 0.0, set(), []

    def start(self, *args):
        self.started.append(time.perf_counter())
        if args and hasattr(args[0], 'compile_id'): self.graphs.add(str(args[0].compile_id))

    def end(self, *args):
        if self.started: self.seconds += time.perf_counter() - self.started.pop()

    def __enter__(self):
        from torch._dynamo import callback_handler
        callback_handler.register_start_callback(self.start)
        callback_handler.register_end_callback(self.end)
        return self

    def __exit__(self, *exc):
        from torch._dynamo import callback_handler
        callback_handler.remove_start_callback(self.start)
        callback_handler.remove_end_callback(self.end)

    def record(self, exp: Experiment, in_fit: float) -> dict:
        "What the run's .json keeps: how it compiled, the seconds in all and within the fit, and the graphs made."
        return dict(mode=exp.compile_mode, backend=exp.compile_backend, seconds=round(self.seconds, 2),
                    fit_seconds=round(in_fit, 2), graphs=len(self.graphs))


def compile_model(learn, exp: Experiment):
    """Compile `learn.model` in place (`nn.Module.compile`): the module keeps its class and parameter names, so no
    `_orig_mod.` prefix reaches a checkpoint or export. The work happens at the first batch of each new kind (frozen,
    unfrozen, evaluation), not here."""
    kwargs = dict(backend=exp.compile_backend)
    if exp.compile_backend == 'inductor': kwargs['mode'] = exp.compile_mode
    learn.model.compile(**kwargs)
    return learn


@contextlib.contextmanager
def plain(model):
    "`model` without its compiled call while the block runs: what pickles into an export, and loads without a compiler."
    compiled = model.__dict__.get('_compiled_call_impl')
    model._compiled_call_impl = None
    try: yield model
    finally: model._compiled_call_impl = compiled
