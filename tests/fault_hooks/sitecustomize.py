"""Start-up hook for the resume tests' child processes (tests/faults.py): Python imports this module at start-up
when `PYTHONPATH` holds its folder. With `GQ_FAULT_KILL_AFTER_STEP=k` set, the process SIGKILLs itself once its
run records step k; without it, this does nothing."""

import os
import sys

_step = os.environ.get("GQ_FAULT_KILL_AFTER_STEP")
if _step:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/, for faults.py
    from faults import install_kill_after_step

    install_kill_after_step(int(_step))
    del sys.path[0]
