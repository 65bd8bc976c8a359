"""A stop (SIGTERM, Ctrl-C) inside a command: the command sees KeyboardInterrupt, and the process is left as it was."""
import os, signal, sys

import pytest

from paddy.stops import quiet_loaders, stoppable, stopping


class Raises:
    "An object whose finaliser fails: Python reports that through sys.unraisablehook."
    def __del__(self): raise ValueError('reported')


def test_stop_then_handlers_and_hooks_as_before(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, 'unraisablehook', lambda u: seen.append(u.exc_type))
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stoppable(): os.kill(os.getpid(), signal.SIGTERM)
    assert stopping()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    Raises()  # collected at once: its report must still reach the hook the process had
    assert seen == [ValueError]


def test_loader_reports_of_a_stop_are_filtered():
    seen = []
    class U:  # what sys.unraisablehook is given
        def __init__(self, obj, exc): self.object, self.exc_type = obj, exc
    from torch.utils.data import DataLoader
    quiet_loaders(seen.append, U(DataLoader([1]), RuntimeError))
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter
    # a stop inside the iterator's __init__: its __del__ fails on what was never set, and the report names the function
    quiet_loaders(seen.append, U(_MultiProcessingDataLoaderIter.__del__, AttributeError))
    quiet_loaders(seen.append, U(None, ConnectionResetError))
    quiet_loaders(seen.append, u := U(object(), ValueError))
    assert seen == [u]


def test_a_new_command_starts_unstopped():
    with stoppable(): assert not stopping()
