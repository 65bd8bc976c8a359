"""Many runs from a queue, resumable, a log file each: the jobs of a sweep (`jobs`), started by the driver (`run`),
run by one engine, this machine's GPUs one run each (`local`, the default) or a Ray cluster's (`ray`)."""
from .jobs import Sweep, execute, finished, job_of, run_env, stopped
from .local import devices, run_queue
from .driver import sweep

__all__ = ['Sweep', 'devices', 'execute', 'finished', 'job_of', 'run_env', 'run_queue', 'stopped', 'sweep']
