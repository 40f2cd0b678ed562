import os
import re
from pathlib import Path

import pytest

from drainpipe.config import Config, ConfigError


def test_flags_win_over_environment_which_wins_over_defaults() -> None:
    c = Config.from_env({"PORT": "7000", "DRAINPIPE_DATA_DIR": "/x"}, port=8000)
    assert c.port == 8000 and c.data_dir == Path("/x") and c.lateness_s == 300


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT='http' is not a whole number"),
        ({"PORT": "70000"}, "PORT=70000 is outside 1..65535"),
        ({"DRAINPIPE_FLUSH_INTERVAL_S": "0"}, "outside 0.01..60.0"),
        ({"KAFKA_URL": "http://broker:9092"}, "scheme must be kafka:// or kafka+ssl://"),
    ],
)
def test_bad_settings_are_named_with_their_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_env(env)


def test_herokus_kafka_url_becomes_bootstrap_servers_and_tls_settings() -> None:
    c = Config.from_env(
        {
            "KAFKA_URL": "kafka+ssl://b1.example:9096,kafka+ssl://b2.example:9096",
            "KAFKA_TRUSTED_CERT": "CA PEM",
            "KAFKA_CLIENT_CERT": "CERT PEM",
            "KAFKA_CLIENT_CERT_KEY": "KEY PEM",
            "KAFKA_PREFIX": "tenant-1.",
        }
    )
    assert c.kafka_bootstrap == "b1.example:9096,b2.example:9096"
    settings = dict(c.kafka_config)
    assert settings["security.protocol"] == "SSL"
    assert settings["ssl.ca.pem"] == "CA PEM" and settings["ssl.key.pem"] == "KEY PEM"
    assert c.topic_prefix == "tenant-1."


def test_shards_come_from_a_list_or_database_url() -> None:
    assert Config.from_env({"DATABASE_URL": "postgres://a/db"}).shards == ("postgres://a/db",)
    c = Config.from_env({"DRAINPIPE_SHARDS": "postgres://a/x, postgres://b/y", "DATABASE_URL": "z"})
    assert c.shards == ("postgres://a/x", "postgres://b/y")


def test_roles_refuse_to_start_without_kafka_and_say_what_to_set() -> None:
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS"):
        Config.from_env({}).require_scale("rollup")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Config.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"}).require_scale("sink")


def test_any_librdkafka_setting_can_be_passed_through() -> None:
    c = Config.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "DRAINPIPE_KAFKA_CONFIG": "session.timeout.ms=1000, a=b",
        }
    )
    assert dict(c.kafka_config) == {"session.timeout.ms": "1000", "a": "b"}
    with pytest.raises(ConfigError, match="is not key=value"):
        Config.from_env({"DRAINPIPE_KAFKA_CONFIG": "nonsense"})


@pytest.mark.parametrize(("cores", "workers"), [(None, 1), (1, 1), (2, 1), (4, 3), (16, 8)])
def test_up_leaves_a_core_to_the_log_owner_and_gives_http_the_rest(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, workers: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert Config.from_env({}).workers == workers


def test_an_instance_id_comes_from_the_flag_or_the_environment_and_is_checked() -> None:
    kafka = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}
    assert Config.from_env(kafka).instance_id is None  # dynamic members by default
    assert Config.from_env({**kafka, "DYNO": "rollup.1"}).instance_id is None
    env = {**kafka, "DRAINPIPE_INSTANCE_ID": "rollup.1"}
    assert Config.from_env(env).instance_id == "rollup.1"
    assert Config.from_env(env, instance_id="rollup.2").instance_id == "rollup.2"
    with pytest.raises(ConfigError, match=re.escape("--instance-id 'rollup 1' is not a usable")):
        Config.from_env(kafka, instance_id="rollup 1")
    with pytest.raises(ConfigError, match="DRAINPIPE_INSTANCE_ID 'x/y'"):
        Config.from_env({**kafka, "DRAINPIPE_INSTANCE_ID": "x/y"})
    with pytest.raises(ConfigError, match=re.escape("DRAINPIPE_INSTANCE_ID '..' is not")):
        Config.from_env({**kafka, "DRAINPIPE_INSTANCE_ID": ".."})
    with pytest.raises(ConfigError, match="--instance-id is empty"):
        Config.from_env(env, instance_id="")
    # One setting for every process would fence all but one of them.
    shared = {**kafka, "DRAINPIPE_KAFKA_CONFIG": "group.instance.id=a"}
    with pytest.raises(ConfigError, match="--instance-id"):
        Config.from_env(shared)
