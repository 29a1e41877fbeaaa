"""The routing config: LiteLLM's proxy `config.yaml` shape plus a `taskrouter:` section.

Strings written `os.environ/NAME` are secrets: load checks the variable exists, and the value is read only
when the LiteLLM Router is built, so it never sits in this object, its repr or an error message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from classifier.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEMO_CONFIG",
    "PRODUCTION_EXAMPLE",
    "Config",
    "config_from_env",
    "load_config",
    "read_yaml",
    "resolve_secrets",
]

CONFIG_DIR = Path(__file__).parent / "configs"
DEMO_CONFIG = CONFIG_DIR / "demo.yaml"
PRODUCTION_EXAMPLE = CONFIG_DIR / "production.yaml"
ENV_PREFIX = "os.environ/"
CONFIG_ENV = "TASKROUTER_CONFIG"
"""The environment variable that names the routing config file when none is given."""


class _Strict(BaseModel):
    """Unknown keys, a value of the wrong type (`true` or `"0.5"` for a number, `"yes"` for a flag) and infinite or
    NaN numbers are errors, not silently converted."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Deployment(_Strict):
    """One `model_list` entry, as LiteLLM reads it."""

    model_name: str = Field(min_length=1)
    litellm_params: dict[str, Any]
    model_info: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_model(self) -> Deployment:
        if not isinstance(self.litellm_params.get("model"), str):
            raise ValueError("litellm_params.model must be a string")
        return self


RoutingStrategy = Literal[
    "simple-shuffle",
    "least-busy",
    "usage-based-routing",
    "usage-based-routing-v2",
    "latency-based-routing",
    "cost-based-routing",
]


class RoutingGroup(_Strict):
    """Pools that share a routing strategy of their own (LiteLLM's `RoutingGroup`)."""

    group_name: str = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    """Pool names (`model_name`s of model_list); a pool belongs to at most one group."""
    routing_strategy: RoutingStrategy
    routing_strategy_args: dict[str, Any] | None = None


RETRY_POLICY_KEYS = (
    "BadRequestErrorRetries", "AuthenticationErrorRetries", "TimeoutErrorRetries", "RateLimitErrorRetries",
    "ContentPolicyViolationErrorRetries", "InternalServerErrorRetries", "ServiceUnavailableErrorRetries",
    "NotFoundErrorRetries", "DefaultRetries",
)  # fmt: skip
"""LiteLLM's `RetryPolicy` fields (a test compares them with the installed LiteLLM's): LiteLLM drops a key it does
not know, so a misspelt one would leave the policy empty without a word."""
ALLOWED_FAILS_POLICY_KEYS = (
    "BadRequestErrorAllowedFails", "AuthenticationErrorAllowedFails", "TimeoutErrorAllowedFails",
    "RateLimitErrorAllowedFails", "ContentPolicyViolationErrorAllowedFails", "InternalServerErrorAllowedFails",
    "ServiceUnavailableErrorAllowedFails", "BadGatewayErrorAllowedFails", "NotFoundErrorAllowedFails",
)  # fmt: skip
"""LiteLLM's `AllowedFailsPolicy` fields, as `RETRY_POLICY_KEYS`."""


class RouterSettings(_Strict):
    """The LiteLLM Router arguments taskrouter passes through (anything else is rejected)."""

    routing_strategy: RoutingStrategy = "simple-shuffle"
    """The strategy of every pool no routing group claims."""
    routing_strategy_args: dict[str, Any] | None = None
    routing_groups: list[RoutingGroup] = Field(default_factory=list)
    fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    context_window_fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    default_fallbacks: list[str] | None = None
    num_retries: int = Field(default=0, ge=0)
    retry_after: float = Field(default=0, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    allowed_fails: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)
    retry_policy: dict[str, NonNegativeInt] | None = None
    allowed_fails_policy: dict[str, NonNegativeInt] | None = None
    enable_pre_call_checks: bool = False
    disable_cooldowns: bool = False
    redis_host: str | None = None
    redis_port: Annotated[int, Field(ge=1, le=65535)] | str | None = None  # a string for os.environ/NAME
    redis_password: str | None = None
    redis_url: str | None = None
    cache_responses: bool = False

    @field_validator("retry_policy", "allowed_fails_policy")
    @classmethod
    def _known_keys(cls, policy: dict[str, int] | None, info: ValidationInfo) -> dict[str, int] | None:
        known = RETRY_POLICY_KEYS if info.field_name == "retry_policy" else ALLOWED_FAILS_POLICY_KEYS
        unknown = sorted(set(policy or {}) - set(known))
        if unknown:
            raise ValueError(f"unknown keys {unknown}; LiteLLM reads {list(known)}")
        return policy

    @field_validator("redis_port")
    @classmethod
    def _port_or_secret(cls, port: int | str | None) -> int | str | None:
        if isinstance(port, str) and port.strip().isdigit() and 1 <= int(port) <= 65535:
            return int(port)  # "6379", as templated YAML often writes it
        if isinstance(port, str) and not port.startswith(ENV_PREFIX):
            raise ValueError(f"must be a port number or {ENV_PREFIX}NAME")
        return port


class LiteLLMSettings(_Strict):
    """LiteLLM settings taskrouter applies to the Router it builds (that Router's own, not LiteLLM's module-wide ones):
    `drop_params` on each call, `request_timeout` as the default timeout unless `router_settings.timeout` is set."""

    drop_params: bool | None = None
    request_timeout: float | None = Field(default=None, gt=0)


class ClassifierSettings(_Strict):
    model: str | None = None
    """Model directory; None = the model shipped with the package."""
    threshold: float | None = Field(default=None, ge=0, le=1)
    static: bool = True
    """Use the model's static-embedding stage (when it has one); false sends every query past the rules to MiniLM."""
    static_threshold: float | None = Field(default=None, ge=0, le=1)
    """Override the static stage's trained threshold: lower answers more queries without MiniLM."""
    priors: dict[str, float] | None = None
    """The label mix of the traffic (label → share, every label of the model); the heads' probabilities are
    re-weighted to it (`classifier.serving.priors`). `taskrouter priors` estimates it. None: the training mix."""
    max_escalation: float | None = Field(default=None, gt=0, le=1)
    """Cap the share of queries passed on to stage 3 at run time (`classifier.serving.budget`): a query below the
    threshold escalates only if it ranks among the least confident of recent ones and the cap is not yet reached
    over them. None: off."""
    escalation_window: int = Field(default=1000, ge=100, le=100_000)
    """How many recent cascade runs `max_escalation` is held over (this process's own; a follow-up in a
    conversation runs the cascade twice: on the turn alone and in context). Only with `max_escalation`."""

    @model_validator(mode="after")
    def _window_needs_a_budget(self) -> ClassifierSettings:
        if "escalation_window" in self.model_fields_set and self.max_escalation is None:
            raise ValueError("escalation_window is read only with max_escalation: set both, or neither")
        return self

    fallback_label: str | None = Field(default=None, min_length=1)
    """Queries far from every training example get this label (and its pool, or the default pool) instead of the
    nearest label; the decision's stage is `scope`. Needs a model trained with a scope threshold. None: off."""


class LLMClassifierSettings(_Strict):
    alias: str | None = None
    """Pool that answers stage 3; None switches stage 3 off."""
    timeout_s: float = Field(default=3.0, gt=0)


class ConversationSettings(_Strict):
    context_turns: int = Field(default=3, ge=0)
    """How many earlier user turns a follow-up is classified with."""
    switch_confidence: float = Field(default=0.9, ge=0, le=1)
    """A follow-up leaves the conversation's label only when classified alone at least this confidently."""


class TelemetrySettings(_Strict):
    url: str | None = None
    store_text: bool = False


class TaskRouterSettings(_Strict):
    pools: dict[str, str] = Field(default_factory=dict)
    default_pool: str
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    llm_classifier: LLMClassifierSettings = Field(default_factory=LLMClassifierSettings)
    conversation: ConversationSettings = Field(default_factory=ConversationSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    metrics: Literal["prometheus"] | None = None
    """`prometheus`: count decisions and responses on prometheus_client's default registry (routing/metrics.py)."""
    name: str = Field(default="default", min_length=1, max_length=64)
    """This router's `router` label in its metrics; routers of one process with the same name share their series."""


class Config(_Strict):
    """A validated routing config."""

    model_list: list[Deployment] = Field(min_length=1)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    litellm_settings: LiteLLMSettings = Field(default_factory=LiteLLMSettings)
    taskrouter: TaskRouterSettings
    source: str | None = Field(default=None, exclude=True)

    @property
    def pool_names(self) -> list[str]:
        return list(dict.fromkeys(d.model_name for d in self.model_list))

    def pool_for(self, label: str) -> str:
        """The pool a label routes to (the default pool when unmapped)."""
        return self.taskrouter.pools.get(label, self.taskrouter.default_pool)

    def _check_references(self) -> None:
        pools = set(self.pool_names)

        def need(name: str, where: str) -> None:
            if name not in pools:
                raise ConfigError(f"unknown pool {name!r}; pools are {sorted(pools)}", path=where)

        tr = self.taskrouter
        for label, pool in tr.pools.items():
            need(pool, f"taskrouter.pools.{label}")
        need(tr.default_pool, "taskrouter.default_pool")
        if tr.llm_classifier.alias is not None:
            need(tr.llm_classifier.alias, "taskrouter.llm_classifier.alias")
        rs = self.router_settings
        for key in ("fallbacks", "context_window_fallbacks"):
            for i, entry in enumerate(getattr(rs, key)):
                for src, targets in entry.items():
                    need(src, f"router_settings.{key}[{i}]")
                    for t in targets:
                        need(t, f"router_settings.{key}[{i}].{src}")
        for t in rs.default_fallbacks or []:
            need(t, "router_settings.default_fallbacks")
        owner: dict[str, str] = {}
        for i, group in enumerate(rs.routing_groups):
            where = f"router_settings.routing_groups[{i}]"
            if group.group_name == "default" or group.group_name in pools:
                raise ConfigError(
                    f"{group.group_name!r} is reserved or a pool name; name the group differently",
                    path=f"{where}.group_name",
                )
            if any(g.group_name == group.group_name for g in rs.routing_groups[:i]):
                raise ConfigError(f"duplicate group name {group.group_name!r}", path=f"{where}.group_name")
            for pool in group.models:
                need(pool, f"{where}.models")
                if pool in owner:
                    raise ConfigError(
                        f"pool {pool!r} is already in group {owner[pool]!r}; a pool belongs to at most one group",
                        path=f"{where}.models",
                    )
                owner[pool] = group.group_name

    def uses_strategy(self, strategy: str) -> bool:
        """Whether the top-level strategy or any routing group's is `strategy`."""
        rs = self.router_settings
        return rs.routing_strategy == strategy or any(g.routing_strategy == strategy for g in rs.routing_groups)


def _walk_env(value: Any, where: str, found: list[tuple[str, str]]) -> None:
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        found.append((where, value[len(ENV_PREFIX) :]))
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk_env(v, f"{where}.{k}" if where else str(k), found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk_env(v, f"{where}[{i}]", found)


def _check_env(raw: Any) -> None:
    """Raise ConfigError naming the field of the first `os.environ/NAME` whose variable is not set."""
    secrets: list[tuple[str, str]] = []
    _walk_env(raw, "", secrets)
    for path, name in secrets:
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set", path=path)


def resolve_secrets(value: Any, where: str = "") -> Any:
    """A copy of `value` with every `os.environ/NAME` replaced by the variable's value."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set", path=where or None)
        return os.environ[name]
    if isinstance(value, dict):
        return {k: resolve_secrets(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_secrets(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def read_yaml(path: str | Path) -> Any:
    """A config file's YAML (safe_load); unreadable files and bad YAML are ConfigErrors naming the file."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config ({exc.strerror})", path=str(path)) from None
    except UnicodeDecodeError as exc:  # a ValueError too: caught before the NUL-byte case below
        byte = f"0x{exc.object[exc.start]:02x} at offset {exc.start}"
        raise ConfigError(f"not UTF-8 (byte {byte}); save the file as UTF-8", path=str(path)) from None
    except ValueError:  # a path with a NUL byte: no file can have that name
        raise ConfigError("cannot read config (not a valid path)", path=repr(str(path))) from None
    except yaml.YAMLError as exc:  # only the problem and where: PyYAML's message quotes the line, maybe a key
        raise ConfigError(f"invalid YAML ({_yaml_problem(exc)})", path=str(path)) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    return f"{problem}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def config_from_env() -> Path | None:
    """The config file `$TASKROUTER_CONFIG` names; None when it is unset or empty."""
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else None


def load_config(source: str | Path | dict | Config | None = None) -> Config:
    """Load and validate a config from a YAML path, a dict, or pass a Config through.

    With no source, `$TASKROUTER_CONFIG` names the file.
    """
    if isinstance(source, Config):  # built directly (Config.model_validate): the checks below were never run
        _check_env(source.model_dump(exclude={"source"}))
        source._check_references()
        _check_installed(source)
        return source
    if source is None:
        source = config_from_env()
        if source is None:
            raise ConfigError(f"no routing config: pass config=PATH or set {CONFIG_ENV}")
    where, raw = _read(source)
    return _located(lambda: _checked(raw, where), where)


ROUTING_SECTIONS = ("model_list", "taskrouter")
"""The sections taskrouter reads; a LiteLLM Proxy's config.yaml holds them beside its own."""


def load_routing_sections(source: str | Path | dict, *, calls_providers: bool = True) -> Config:
    """The config's `ROUTING_SECTIONS`, validated as `load_config` validates a whole config; other sections (the
    proxy's `litellm_settings`, `general_settings`) are ignored. `calls_providers=False` is for readers that call
    no provider and serve no requests (the report reads prices and the telemetry URL): deployments'
    `os.environ/NAME` secrets need not be set, pool references are not checked, and `taskrouter.metrics` needs no
    prometheus_client."""
    where, raw = _read(source)
    sections = {key: raw[key] for key in ROUTING_SECTIONS if key in raw}
    return _located(lambda: _checked(sections, where, calls_providers=calls_providers), where)


def _read(source: str | Path | dict) -> tuple[str | None, dict]:
    """(the file's name or None, its mapping): a file's YAML read, a dict as it is; anything else a ConfigError."""
    where, raw = (str(source), read_yaml(source)) if isinstance(source, (str, Path)) else (None, source)
    if not isinstance(raw, dict):
        raise ConfigError("a config must be a mapping", path=where)
    return where, raw


def _located(check: Callable[[], Config], where: str | None) -> Config:
    """`check()`, its ConfigError naming the file `where` as well as the field."""
    try:
        return check()
    except ConfigError as exc:
        if where is None:
            raise
        message = str(exc).removeprefix(f"{exc.path}: ") if exc.path else str(exc)
        raise ConfigError(f"{message} (in {where})", path=exc.path) from None  # `path` stays the field


def _checked(raw: dict, where: str | None, *, calls_providers: bool = True) -> Config:
    """`raw` validated: its fields, and for a config that calls providers its environment references, the pools
    it names and the optional packages it needs."""
    if calls_providers:
        _check_env(raw)
    try:
        config = Config.model_validate({**raw, "source": where})
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        # The message names the field and the problem, never the offending value (it may be a secret).
        raise ConfigError(f"{first['msg']} ({len(exc.errors())} problem(s) in all)", path=path) from None
    if calls_providers:
        config._check_references()
        _check_installed(config)
    return config


def _check_installed(config: Config) -> None:
    """A ConfigError naming the field whose optional package is not installed: at load, not at the first request."""
    if config.taskrouter.metrics != "prometheus":
        return
    from . import metrics  # not prometheus_client itself: `available` only looks for it

    if not metrics.available():
        raise ConfigError("needs prometheus_client: pip install 'taskrouter[metrics]'", path="taskrouter.metrics")
