"""`compile = True`: the model compiled in place by `torch.compile`, so its state dict, freezing and export are those of
the plain model, and the seconds spent compiling are counted apart from the fit."""
import time

from ..compat import compile_callbacks, dynamo_backends, uncompiled
from ..errors import PaddyError
from ..spec import Experiment


def check_compile(exp: Experiment):
    "Raise when `exp.compile_backend` is not one of torch's."
    if not exp.compile: return
    if exp.compile_backend not in dynamo_backends(debug=True):
        # torch's own list, without its debugging backends, and aot_eager, which the tests use
        named = ', '.join(b for b in dynamo_backends() if b != 'inductor')
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
        self.registered = compile_callbacks(self.start, self.end)
        self.registered.__enter__()
        return self

    def __exit__(self, *exc): self.registered.__exit__(*exc)

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


plain = uncompiled  # `model` without its compiled call while the block runs: what pickles into an export
