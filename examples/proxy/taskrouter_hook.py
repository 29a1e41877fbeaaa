"""The proxy callback named in config.yaml: `model="auto"` goes to the pool taskrouter's cascade picks.

The label→pool map is the `taskrouter:` section of $TASKROUTER_CONFIG, else of the config.yaml next to this file.
"""

import os
from pathlib import Path

from routing.proxy import TaskRouterHook

hook = TaskRouterHook(os.environ.get("TASKROUTER_CONFIG") or Path(__file__).with_name("config.yaml"))
