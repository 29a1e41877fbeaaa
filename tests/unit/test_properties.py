"""Property-based tests: no input crashes the input side. Each gives a result or one of our typed errors.

The example counts are set explicitly (MAX_EXAMPLES per test); run with `--hypothesis-show-statistics` to see
how many inputs each test tried.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.data import check_query, load_dataset
from classifier.errors import ConfigError, DataError, QueryError
from routing.config import Config, load_config
from routing.conversation import Conversation, read_history, read_messages

MAX_EXAMPLES = 400
SETTINGS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
roles = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "wizard", ""])
parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=30) | json_scalars}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": json_values}),
    st.text(max_size=10),
    json_scalars,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": roles | json_scalars},
        optional={
            "content": st.text(max_size=60) | st.none() | st.lists(parts, max_size=3) | json_values,
            "tool_calls": json_values,
        },
    )
    | json_values,
    max_size=5,
)


@SETTINGS
@given(st.text(max_size=300) | json_values)
def test_check_query_returns_the_text_or_a_query_error(value):
    try:
        assert check_query(value) is value
    except QueryError as exc:
        assert exc.field == "query"


@SETTINGS
@given(messages | json_values)
def test_read_messages_gives_a_conversation_or_a_query_error(value):
    try:
        conv = read_messages(value)
    except QueryError as exc:
        assert str(exc).startswith("messages")
    else:
        assert isinstance(conv, Conversation) and conv.query.strip()


@SETTINGS
@given(messages | json_values, st.text(max_size=60) | json_scalars)
def test_read_history_gives_a_conversation_or_a_query_error(history, query):
    try:
        conv = read_history(history, query)
    except QueryError as exc:
        assert str(exc).startswith(("history", "query"))
    else:
        assert isinstance(conv, Conversation) and conv.query == query and conv.query.strip()
        assert all(isinstance(t, str) and t.strip() for t in conv.earlier)


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from(["q.jsonl", "q.csv"]))
def test_data_readers_give_a_dataset_or_a_data_error(tmp_path_factory, data, name):
    p = tmp_path_factory.mktemp("prop") / name
    p.write_bytes(data)
    try:
        ds = load_dataset(p)
    except DataError:
        return
    assert len(ds.texts) == len(ds.labels) > 0


@SETTINGS
@given(
    st.lists(
        st.fixed_dictionaries(
            {"text": st.text(max_size=30) | json_scalars, "label": st.sampled_from(["a", "b", ""]) | json_scalars}
        ),
        max_size=5,
    )
)
def test_jsonl_rows_of_any_shape(tmp_path_factory, rows):
    p = tmp_path_factory.mktemp("prop") / "q.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    try:
        ds = load_dataset(p)
    except DataError:
        return
    kept = list(dict.fromkeys((r["text"], r["label"].strip()) for r in rows))  # a repeated row is dropped
    assert kept and list(zip(ds.texts, ds.labels, strict=True)) == kept  # one record per distinct row, in order


config_sections = st.fixed_dictionaries(
    {},
    optional={
        "model_list": st.lists(
            st.fixed_dictionaries(
                {"model_name": st.sampled_from(["fast", "math", ""]) | json_scalars},
                optional={
                    "litellm_params": json_values | st.fixed_dictionaries({"model": st.text(max_size=10)}),
                    "model_info": json_values,
                },
            ),
            max_size=3,
        )
        | json_values,
        "router_settings": json_values,
        "litellm_settings": json_values,
        "taskrouter": st.fixed_dictionaries(
            {},
            optional={
                "pools": json_values,
                "default_pool": json_values,
                "classifier": json_values,
                "telemetry": json_values,
            },
        )
        | json_values,
    },
)


@SETTINGS
@given(config_sections | json_values)
def test_config_loading_gives_a_config_or_a_config_error(raw):
    try:
        config = load_config(raw)
    except ConfigError:
        return
    _check_references_hold(config)


def _check_references_hold(config):
    """What a loaded config promises: deployments, and every pool it names among them."""
    assert isinstance(config, Config) and config.model_list
    assert config.taskrouter.default_pool in config.pool_names
    assert set(config.taskrouter.pools.values()) <= set(config.pool_names)


def test_a_config_path_with_a_nul_byte_is_a_config_error():
    """Found by the test above: `Path.read_text` raises ValueError, not OSError, for such a name."""
    with pytest.raises(ConfigError, match="not a valid path"):
        load_config("\x00")


def test_a_config_file_that_is_not_utf8_says_so(tmp_path):
    """UnicodeDecodeError is a ValueError too: it must not read as the NUL-byte path above."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"taskrouter:\n  note: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 \(byte 0xe9 at offset 23\)"):
        load_config(path)


@SETTINGS
@given(st.text(max_size=200))
def test_config_files_of_any_text(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("prop") / "c.yaml"
    p.write_text(text, encoding="utf-8")
    try:
        config = load_config(p)
    except ConfigError:
        return
    _check_references_hold(config)
    assert config.source == str(p)


def test_yaml_is_parsed_safely(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("!!python/object/apply:os.system ['echo hacked']\n")
    try:
        load_config(p)
    except ConfigError:
        return
    raise AssertionError("a python tag must not be accepted")  # pragma: no cover
