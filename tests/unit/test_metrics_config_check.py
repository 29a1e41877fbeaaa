"""`taskrouter.metrics: prometheus` without prometheus_client installed is refused when the config loads.

Before: such a config loaded, and the ConfigError came only when the router was built, at the first request.
"""

import importlib.util
import sys

import pytest
import yaml

from classifier.errors import ConfigError
from routing.config import Config, load_config, load_routing_sections

PLAIN = {
    "model_list": [{"model_name": "fast", "litellm_params": {"model": "openai/a"}}],
    "taskrouter": {"default_pool": "fast"},
}
COUNTED = {**PLAIN, "taskrouter": {**PLAIN["taskrouter"], "metrics": "prometheus"}}
MISSING = r"^taskrouter\.metrics: needs prometheus_client: pip install 'taskrouter\[metrics\]'"


@pytest.fixture
def no_prometheus_client(monkeypatch):
    """prometheus_client uninstallable in this process: a None in sys.modules is how Python blocks an import."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    assert importlib.util.find_spec("prometheus_client") is None
    with pytest.raises(ModuleNotFoundError):
        import prometheus_client  # noqa: F401


def proxy_config(raw):
    from routing.proxy import load_routing_config  # the proxy's packages (fastapi) only where it is tested

    return load_routing_config(raw)


LOADERS = [
    pytest.param(load_config, id="load_config"),
    pytest.param(load_routing_sections, id="load_routing_sections"),
    pytest.param(proxy_config, id="proxy.load_routing_config"),
    pytest.param(lambda raw: load_config(Config.model_validate(raw)), id="load_config(Config)"),
]


@pytest.mark.parametrize("load", LOADERS)
def test_metrics_without_prometheus_client_fail_at_load(no_prometheus_client, load):
    with pytest.raises(ConfigError, match=MISSING) as info:
        load(COUNTED)
    assert info.value.path == "taskrouter.metrics"


def test_the_proxy_hook_with_such_a_config_fails_at_its_start(no_prometheus_client):
    """`prometheus=None` (the default) asks for no metrics of its own, but the config's router counts."""
    from routing.proxy import TaskRouterHook

    with pytest.raises(ConfigError, match=MISSING):
        TaskRouterHook(COUNTED)


def test_a_config_files_error_names_the_file_and_the_field(no_prometheus_client, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(COUNTED), encoding="utf-8")
    with pytest.raises(ConfigError, match=MISSING + rf".* \(in {path}\)$") as info:
        load_config(path)
    assert info.value.path == "taskrouter.metrics"


@pytest.mark.parametrize("load", LOADERS)
def test_a_config_without_metrics_still_loads(no_prometheus_client, load):
    assert load(PLAIN).taskrouter.metrics is None


def test_the_report_reads_a_metrics_config_without_prometheus_client(no_prometheus_client):
    """The report (`calls_providers=False`) serves no metrics: it has no need of prometheus_client."""
    config = load_routing_sections(COUNTED, calls_providers=False)
    assert config.taskrouter.metrics == "prometheus"


@pytest.mark.parametrize("load", LOADERS)
def test_metrics_load_when_prometheus_client_is_installed(load):
    assert importlib.util.find_spec("prometheus_client") is not None  # this venv has the `metrics` extra
    assert load(COUNTED).taskrouter.metrics == "prometheus"
