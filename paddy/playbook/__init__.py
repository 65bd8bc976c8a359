"""Stage 6, the playbook: Road to the Top's whole method in one command, under a time budget and resumable. Its stages
(`stages.py`) run in order, each recorded in `playbooks/<run>/state.json` (`state.py`) once done, against the plan
(`plan.py`) of what fits in the hours given, and summed up in `playbooks/<run>/summary.md` (`summary.py`)."""
from .play import play, progress

__all__ = ['play', 'progress']
