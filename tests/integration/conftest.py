import pytest

from classifier.serving.cascade import Cascade
from tests.fake_provider import FakeProvider


@pytest.fixture(scope="session")
def fake():
    server = FakeProvider()
    yield server
    server.close()


@pytest.fixture
def provider(fake):
    fake.reset()
    return fake


@pytest.fixture(scope="session")
def shipped_cascade():
    return Cascade.load()


@pytest.fixture
def build(shipped_cascade):
    """Builds routers on a config with the shipped model; each is closed at teardown, pass or fail."""
    from routing import TaskRouter

    built: list[TaskRouter] = []

    def _build(cfg):
        built.append(TaskRouter(cfg, cascade=shipped_cascade))
        return built[-1]

    yield _build
    for tr in built:
        tr.close()


def deployment(fake, pool, name, **params):
    """A model_list entry served by the fake provider; the deployment id differs from the model name."""
    return {
        "model_name": pool,
        "litellm_params": {"model": f"openai/{name}", "api_base": fake.url, "api_key": "sk-fake-test-key", **params},
        "model_info": {"id": f"{name}-id"},
    }


def make_config(fake, *, deployments=None, router_settings=None, **taskrouter):
    """Pools fast/capable/math/code/creative/big by default; custom deployments route every label to `fast`."""
    pools = {} if deployments else {"math": "math", "code": "code", "creative": "creative"}
    deployments = deployments or [
        deployment(fake, p, f"{p}-a") for p in ("fast", "capable", "math", "code", "creative", "big")
    ]
    return {
        "model_list": deployments,
        "router_settings": {"num_retries": 0, "timeout": 5, **(router_settings or {})},
        "taskrouter": {"pools": pools, "default_pool": "fast", **taskrouter},
    }
