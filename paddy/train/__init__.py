"""Stage 3, training: the Learner and its weights, heads, memory preflight, resume, several processes, and `train`."""
from .trainer import train
from .settings import Settings
