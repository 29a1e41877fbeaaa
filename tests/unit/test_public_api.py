import classifier
import routing


def test_all_names_resolve():
    for module in (classifier, routing):
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def test_importing_the_packages_is_cheap():
    import subprocess
    import sys

    code = "import sys, classifier, routing; print('litellm' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
