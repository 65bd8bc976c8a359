"""How a run trains, apart from its experiment: one object that `paddy train` fills, a resume reads back whole, and
`--processes`, the sweep and the Kaggle kernel turn back into `paddy train`'s arguments."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    "A run's options that change how it trains or where it is recorded, but not the recipe."
    data: str | None = None          # the competition folder; None searches ($PADDY_DATA, Kaggle's input, data/…)
    cache: bool = True               # keep item-transformed images for later epochs and runs (see paddy cache)
    gpu_cache: bool = True           # hold the cached training images on the GPU when they fit
    precision: str = 'auto'          # on CUDA: auto | bf16 | fp16 | fp32
    channels_last: bool = True       # on CUDA: channels_last memory format
    sweep: str | None = None         # SWEEP/JOB, set by paddy sweep
    wandb: bool = False              # also log the run to Weights & Biases
    fit_memory: float | None = None  # GB of GPU memory to fit by raising accum
    processes: int = 1               # one per GPU, through `accelerate launch`
    test_preds: bool = True          # TTA on the test set at the end; off (a screening run), an ensemble makes them

    def argv(self, *head: str, sets=()) -> list[str]:
        """`head` (e.g. 'train', EXP), `--set` for each of `sets`, then the option of every setting off its default: the
        arguments that `paddy train` reads back into these settings (`paddy sweep` takes the ones it shares)."""
        out = [*head, *(x for s in sets for x in ('--set', s))]
        if self.data is not None: out += ['--data', str(self.data)]
        if not self.cache: out.append('--no-cache')
        if not self.gpu_cache: out.append('--no-gpu-cache')
        if self.precision != 'auto': out += ['--precision', self.precision]
        if not self.channels_last: out.append('--no-channels-last')
        if self.wandb: out.append('--wandb')
        if self.sweep: out += ['--sweep', self.sweep]
        if self.processes != 1: out += ['--processes', str(self.processes)]
        if self.fit_memory is not None: out += ['--fit-memory', f'{self.fit_memory:g}']
        if not self.test_preds: out.append('--no-test-preds')
        return out
