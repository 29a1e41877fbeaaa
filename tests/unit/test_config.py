import pytest

from classifier.errors import ConfigError
from routing.config import DEMO_CONFIG, PRODUCTION_EXAMPLE, load_config

BASE = {
    "model_list": [
        {"model_name": "fast", "litellm_params": {"model": "openai/a", "api_key": "os.environ/TR_KEY"}},
        {"model_name": "capable", "litellm_params": {"model": "openai/b"}},
    ],
    "taskrouter": {"pools": {"math": "capable"}, "default_pool": "fast"},
}


def with_(**changes):
    import copy

    cfg = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def test_valid_config_and_pool_map(monkeypatch):
    monkeypatch.setenv("TR_KEY", "sk-live-abcdef123456")
    c = load_config(BASE)
    assert c.pool_for("math") == "capable" and c.pool_for("poetry") == "fast"
    assert "sk-live" not in repr(c) and "os.environ/TR_KEY" in repr(c)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (with_(taskrouter__pools={"math": "x"}), r"taskrouter\.pools\.math: unknown pool 'x'"),
        (with_(taskrouter__default_pool="nope"), r"taskrouter\.default_pool: unknown pool 'nope'"),
        (with_(taskrouter__llm_classifier={"alias": "gone"}), r"taskrouter\.llm_classifier\.alias: unknown pool"),
        (
            with_(router_settings={"fallbacks": [{"fast": ["ghost"]}]}),
            r"router_settings\.fallbacks\[0\]\.fast: unknown pool",
        ),
        (with_(taskrouter__colour="red"), r"taskrouter\.colour: Extra inputs are not permitted"),
        (with_(router_settings={"routing_strategy": "random"}), r"router_settings\.routing_strategy"),
        (with_(router_settings={"num_retries": -1}), r"router_settings\.num_retries"),
        (with_(model_list=[]), r"model_list: List should have at least 1 item"),
        ({"model_list": BASE["model_list"]}, r"^taskrouter: Field required"),
        (with_(taskrouter__classifier={"static_threshold": 1.5}), r"taskrouter\.classifier\.static_threshold"),
        (
            with_(
                router_settings={
                    "routing_groups": [{"group_name": "g", "models": ["x"], "routing_strategy": "cost-based-routing"}]
                }
            ),
            r"router_settings\.routing_groups\[0\]\.models: unknown pool 'x'",
        ),
        (
            with_(
                router_settings={
                    "routing_groups": [{"group_name": "g", "models": ["fast"], "routing_strategy": "fastest"}]
                }
            ),
            r"router_settings\.routing_groups\.0\.routing_strategy: Input should be",
        ),
        (
            with_(
                router_settings={
                    "routing_groups": [
                        {"group_name": "g", "models": ["fast"], "routing_strategy": "latency-based-routing"},
                        {"group_name": "h", "models": ["capable", "fast"], "routing_strategy": "cost-based-routing"},
                    ]
                }
            ),
            r"router_settings\.routing_groups\[1\]\.models: pool 'fast' is already in group 'g'",
        ),
        (
            with_(
                router_settings={
                    "routing_groups": [
                        {"group_name": "fast", "models": ["fast"], "routing_strategy": "latency-based-routing"}
                    ]
                }
            ),
            r"router_settings\.routing_groups\[0\]\.group_name: 'fast' is reserved or a pool name",
        ),
        (
            with_(
                router_settings={
                    "routing_groups": [
                        {"group_name": "g", "models": ["fast"], "routing_strategy": "least-busy", "weights": {}}
                    ]
                }
            ),
            r"router_settings\.routing_groups\.0\.weights: Extra inputs are not permitted",
        ),
    ],
    ids=[
        "unknown-pool",
        "default-pool",
        "llm-alias",
        "fallback-target",
        "extra-key",
        "bad-strategy",
        "negative",
        "empty-model-list",
        "no-taskrouter",
        "static-threshold",
        "group-unknown-pool",
        "group-bad-strategy",
        "group-pool-twice",
        "group-named-like-a-pool",
        "group-extra-key",
    ],
)
def test_malformed_config_names_the_field(monkeypatch, cfg, match):
    monkeypatch.setenv("TR_KEY", "k")
    with pytest.raises(ConfigError, match=match):
        load_config(cfg)


def test_missing_secret_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("TR_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.api_key: environment variable TR_KEY"):
        load_config(BASE)


def test_validation_errors_do_not_echo_values(monkeypatch):
    monkeypatch.setenv("TR_KEY", "k")
    cfg = with_(router_settings={"timeout": "sk-secret-looking-value"})
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert "sk-secret" not in str(info.value)


def test_files_yaml_and_env_default(tmp_path, monkeypatch):
    bad = tmp_path / "c.yaml"
    bad.write_text("model_list: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    monkeypatch.delenv("TASKROUTER_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="set TASKROUTER_CONFIG"):
        load_config(None)
    monkeypatch.setenv("TASKROUTER_CONFIG", str(DEMO_CONFIG))
    assert load_config(None).taskrouter.default_pool == "fast"


def test_shipped_configs_validate(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-a")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-b")
    prod = load_config(PRODUCTION_EXAMPLE)
    assert prod.router_settings.routing_strategy == "cost-based-routing"
    strategy = {p: g.routing_strategy for g in prod.router_settings.routing_groups for p in g.models}
    assert strategy == {
        "fast": "latency-based-routing",
        **dict.fromkeys(["capable", "math", "code", "creative", "long-context"], "cost-based-routing"),
    }
    assert prod.uses_strategy("cost-based-routing") and not demo_uses_cost_based()
    assert set(prod.pool_names) == {"fast", "capable", "math", "code", "creative", "long-context"}
    demo = load_config(DEMO_CONFIG)
    assert all("mock_response" in d.litellm_params for d in demo.model_list)


def demo_uses_cost_based():
    return load_config(DEMO_CONFIG).uses_strategy("cost-based-routing")


def test_any_group_using_cost_based_routing_counts(monkeypatch):
    monkeypatch.setenv("TR_KEY", "k")
    groups = [{"group_name": "g", "models": ["capable"], "routing_strategy": "cost-based-routing"}]
    assert load_config(with_(router_settings={"routing_groups": groups})).uses_strategy("cost-based-routing")
    assert not load_config(BASE).uses_strategy("cost-based-routing")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"router_settings": {"num_retries": True}}, r"router_settings\.num_retries"),
        ({"taskrouter__classifier": {"threshold": True}}, r"taskrouter\.classifier\.threshold"),
        ({"taskrouter__classifier": {"threshold": "0.5"}}, r"taskrouter\.classifier\.threshold"),
        ({"taskrouter__classifier": {"threshold": float("nan")}}, r"taskrouter\.classifier\.threshold: .*finite"),
        ({"taskrouter__classifier": {"static": "yes"}}, r"taskrouter\.classifier\.static"),
        ({"taskrouter__classifier": {"priors": {"math": True, "default": 1}}}, r"taskrouter\.classifier\.priors"),
        ({"taskrouter__classifier": {"max_escalation": 0}}, r"taskrouter\.classifier\.max_escalation"),
        ({"taskrouter__classifier": {"max_escalation": "10%"}}, r"taskrouter\.classifier\.max_escalation"),
        ({"taskrouter__classifier": {"escalation_window": 10}}, r"taskrouter\.classifier\.escalation_window"),
        ({"taskrouter__classifier": {"escalation_window": 500}}, r"taskrouter\.classifier: .*escalation_window"),
        ({"taskrouter__telemetry": {"store_text": "off"}}, r"taskrouter\.telemetry\.store_text"),
        ({"taskrouter__conversation": {"context_turns": True}}, r"taskrouter\.conversation\.context_turns"),
        ({"router_settings": {"timeout": float("inf")}}, r"router_settings\.timeout: .*finite"),
        ({"taskrouter__llm_classifier": {"timeout_s": float("inf")}}, r"taskrouter\.llm_classifier\.timeout_s"),
        ({"router_settings": {"redis_port": -1}}, r"router_settings\.redis_port"),
        ({"router_settings": {"retry_policy": {"TimeoutErrorRetries": -2}}}, r"router_settings\.retry_policy"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_value_of_the_wrong_type_is_refused_not_converted(monkeypatch, changes, field):
    """`true` is not a number, "0.5" is not a float, "yes" is not a flag, and inf/NaN are not limits."""
    monkeypatch.setenv("TR_KEY", "k")
    with pytest.raises(ConfigError, match=field):
        load_config(with_(**changes))


def test_numbers_written_as_integers_are_still_numbers(monkeypatch):
    monkeypatch.setenv("TR_KEY", "k")
    c = load_config(with_(router_settings={"timeout": 30, "retry_after": 0}, taskrouter__classifier={"threshold": 1}))
    assert c.router_settings.timeout == 30.0 and c.taskrouter.classifier.threshold == 1.0


def test_bad_yaml_names_the_place_but_not_the_line(tmp_path):
    """PyYAML quotes the broken line; a config line may hold a literal API key."""
    bad = tmp_path / "c.yaml"
    bad.write_text(
        "model_list:\n  - model_name: fast\n"
        "    litellm_params: {model: openai/x, api_key: sk-live-SECRET123456789}, oops: [\n"
    )
    with pytest.raises(ConfigError, match=r"invalid YAML \(.*line 3, column \d+\)") as info:
        load_config(bad)
    assert "SECRET" not in str(info.value) and info.value.path == str(bad)


def test_a_config_object_built_directly_is_checked_at_the_door(monkeypatch):
    """Config.model_validate skips load_config's checks; passing the object to load_config runs them."""
    from routing.config import Config

    monkeypatch.setenv("TR_KEY", "k")
    unchecked = Config.model_validate(with_(taskrouter__default_pool="nope"))
    with pytest.raises(ConfigError, match=r"taskrouter\.default_pool: unknown pool 'nope'"):
        load_config(unchecked)
    monkeypatch.delenv("TR_KEY")
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.api_key: environment variable TR_KEY"):
        load_config(Config.model_validate(BASE))


def test_a_proxy_config_error_keeps_the_field_and_names_the_file(tmp_path, monkeypatch):
    import yaml

    from routing.proxy import load_routing_config

    monkeypatch.setenv("TR_KEY", "k")
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump({**with_(taskrouter__default_pool="nope"), "general_settings": {"x": 1}}))
    with pytest.raises(ConfigError) as info:
        load_routing_config(path)
    assert info.value.path == "taskrouter.default_pool"
    assert "unknown pool 'nope'" in str(info.value) and str(path) in str(info.value)


def test_the_proxy_hook_checks_its_config_when_it_is_built(monkeypatch):
    """The hook used to keep the config unread until the first `auto` request: a bad one became a 500 on every
    request instead of failing the proxy's start."""
    from routing.proxy import TaskRouterHook

    monkeypatch.setenv("TR_KEY", "k")
    with pytest.raises(ConfigError, match=r"taskrouter\.default_pool: unknown pool 'nope'"):
        TaskRouterHook(with_(taskrouter__default_pool="nope"))
    assert TaskRouterHook(BASE).config.taskrouter.default_pool == "fast"  # checked, not yet loaded: no cascade


@pytest.mark.parametrize(
    ("setting", "value"),
    [("model", "some/dir"), ("threshold", 0.9), ("static", False), ("static_threshold", 0.95),
     ("fallback_label", "default")],
)  # fmt: skip
def test_settings_that_only_a_model_load_applies_are_refused_with_a_given_cascade(monkeypatch, setting, value):
    """With `cascade=`, these were silently dropped (priors and max_escalation apply to any cascade)."""
    from classifier import Cascade
    from routing.proxy import TaskRouterHook
    from routing.router import TaskRouter

    monkeypatch.setenv("TR_KEY", "k")
    config = with_(**{f"taskrouter__classifier__{setting}": value})
    cascade = Cascade.load()
    with pytest.raises(ConfigError, match=rf"^taskrouter\.classifier\.{setting}: applies when taskrouter loads"):
        TaskRouter(config, cascade=cascade)
    with pytest.raises(ConfigError, match=rf"^taskrouter\.classifier\.{setting}: "):
        TaskRouterHook(config, cascade=cascade)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"router_settings__retry_policy": {"RateLimitErrorRetry": 5}}, r"router_settings\.retry_policy"),
        ({"router_settings__allowed_fails_policy": {"TimeoutErrors": 2}}, r"router_settings\.allowed_fails_policy"),
        ({"router_settings__redis_port": "not-a-port"}, r"router_settings\.redis_port"),
    ],
    ids=["retry-policy-typo", "allowed-fails-typo", "port-word"],
)
def test_router_settings_litellm_would_drop_or_misread_are_refused(monkeypatch, changes, field):
    """LiteLLM drops a policy key it does not know (the policy then holds nothing) and took any string as a port."""
    monkeypatch.setenv("TR_KEY", "k")
    with pytest.raises(ConfigError, match=field):
        load_config(with_(**changes))
    secret = load_config(with_(router_settings__redis_port="os.environ/TR_KEY")).router_settings.redis_port
    assert secret == "os.environ/TR_KEY"  # kept as written: the variable is read only where the port is used
    assert load_config(with_(router_settings__redis_port="6379")).router_settings.redis_port == 6379  # templated


def test_the_policy_keys_are_the_installed_litellms():
    from litellm.types.router import AllowedFailsPolicy, RetryPolicy

    from routing.config import ALLOWED_FAILS_POLICY_KEYS, RETRY_POLICY_KEYS

    assert set(RETRY_POLICY_KEYS) == set(RetryPolicy.model_fields)
    assert set(ALLOWED_FAILS_POLICY_KEYS) == set(AllowedFailsPolicy.model_fields)


def test_a_model_no_provider_serves_is_a_config_error_naming_the_deployment(monkeypatch):
    """It was LiteLLM's BadRequestError from inside the Router's constructor (a traceback in `taskrouter route`)."""
    from classifier import Cascade
    from routing.router import TaskRouter

    monkeypatch.setenv("TR_KEY", "k")
    config = with_()
    config["model_list"][1]["litellm_params"]["model"] = "gpt4o-mini-typo"
    with pytest.raises(ConfigError, match=r"^model_list\[1\]\.litellm_params\.model: LiteLLM knows no provider"):
        TaskRouter(config, cascade=Cascade.load())


def test_a_config_file_error_names_the_file_as_well_as_the_field(tmp_path, monkeypatch):
    """A config named by $TASKROUTER_CONFIG, long forgotten, must say which file is wrong."""
    import yaml

    monkeypatch.setenv("TR_KEY", "k")
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(with_(taskrouter__default_pool="nope")))
    monkeypatch.setenv("TASKROUTER_CONFIG", str(path))
    with pytest.raises(ConfigError) as info:
        load_config()
    assert info.value.path == "taskrouter.default_pool"
    message = str(info.value)
    assert message.startswith("taskrouter.default_pool: unknown pool 'nope'") and message.endswith(f"(in {path})")
