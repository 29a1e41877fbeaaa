import importlib
import json
import subprocess
import sys
from types import ModuleType

import pytest

PACKAGES = ("classifier", "routing")

# Run in a fresh interpreter, so that no module another test imported first can make a name resolve.
RESOLVE = """
import importlib, json, sys
package = importlib.import_module(sys.argv[1])
unresolved = {}
for name in package.__all__:
    try:
        obj = getattr(package, name)
    except Exception as exc:
        unresolved[name] = type(exc).__name__
    else:
        if getattr(obj, "__name__", None) != name:
            unresolved[name] = repr(obj)[:80]
print(json.dumps(unresolved))
"""


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_resolve(package):
    """Each name of `__all__` imports, as the object of that name; `__all__` lists each public name once."""
    out = subprocess.run([sys.executable, "-c", RESOLVE, package], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {}
    module = importlib.import_module(package)
    assert module.__all__ == sorted(set(module.__all__))
    eager = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and str(getattr(value, "__module__", "")).startswith(tuple(f"{p}." for p in PACKAGES))
    }
    assert set(module.__all__) == eager | set(module._LAZY)  # nothing importable is missing from __all__


def test_importing_the_packages_is_cheap():
    import subprocess
    import sys

    code = "import sys, classifier, routing; print('litellm' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
