"""The one place genre_lab reaches into a framework's private API, checked when it is imported.

Lightning relaunches extra DDP ranks by re-running the program; under Hydra it builds that command in the
private ``pytorch_lightning.strategies.launchers.subprocess_script._hydra_subprocess_cmd``, which genre_lab
replaces (genre_lab/distributed.py says why). There is no public hook for it. If a Lightning release renames
or removes it, importing this module stops with one line naming the installed and the tested versions,
instead of DDP ranks silently starting the wrong command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import version

import pytorch_lightning.strategies.launchers.subprocess_script as _subprocess_script

TESTED = {"pytorch-lightning": "2.6"}
RANK_COMMAND_HOOK = "_hydra_subprocess_cmd"

if not callable(getattr(_subprocess_script, RANK_COMMAND_HOOK, None)):
    raise ImportError(
        f"genre_lab needs pytorch_lightning.strategies.launchers.subprocess_script.{RANK_COMMAND_HOOK} (Lightning's "
        f"Hydra relaunch hook), which pytorch-lightning {version('pytorch-lightning')} does not have; genre_lab is "
        f"tested with pytorch-lightning {TESTED['pytorch-lightning']}.x: pip install 'pytorch-lightning>=2.3,<3'")


def set_rank_command(command: Callable[[int], tuple[Sequence[str], str]]) -> None:
    """Make Lightning's subprocess launcher start DDP rank ``local_rank`` with ``command(local_rank)``, which
    returns (argv, working directory)."""
    setattr(_subprocess_script, RANK_COMMAND_HOOK, command)
