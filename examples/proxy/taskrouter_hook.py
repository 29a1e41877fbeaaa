"""The proxy callback named in config.yaml: `model="auto"` goes to the pool taskrouter's cascade picks.

The label→pool map is the `taskrouter:` section of $TASKROUTER_CONFIG, else of the config.yaml next to this file.
"""

from pathlib import Path

from routing.config import config_from_env
from routing.proxy import TaskRouterHook

hook = TaskRouterHook(config_from_env() or Path(__file__).with_name("config.yaml"))
