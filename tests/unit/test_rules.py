"""seaport.rules: the rules the components apply and the policy pack enforces, checked by value."""

import pytest

from seaport import rules


@pytest.mark.parametrize(
    ("variable", "secret"),
    [
        # passwords, however they are spelled
        ("PASSWORD", True),
        ("DB_PASSWORD", True),
        ("RABBITMQ_DEFAULT_PASS", True),
        ("DB_PASSWD", True),
        ("MYSQL_ROOT_PWD", True),
        ("db_password", True),  # case does not hide it
        ("Db_Pass", True),
        # tokens, keys, cookies, credentials
        ("CONSUL_HTTP_TOKEN", True),
        ("API_KEY", True),
        ("STRIPE_APIKEY", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("CLIENT_SECRET", True),
        ("APP_SECRETS", True),
        ("RABBITMQ_ERLANG_COOKIE", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("DB_CREDENTIAL", True),
        ("TLS_PRIVATE_KEY", True),
        ("KEY", True),
        ("SECRET_", True),  # a trailing underscore still ends the word
        # whole words only: these merely contain a secret word
        ("KEYCLOAK_URL", False),
        ("MONKEY_MODE", False),
        ("KEYBOARD_LAYOUT", False),
        ("PASSENGER_COUNT", False),
        ("BYPASS_CACHE", False),
        ("COMPASS_URL", False),
        ("TOKENIZER_MODEL", False),
        ("SECRETARY_EMAIL", False),
        ("PASSWORDLESS_LOGIN", False),
        # plain settings of this project
        ("CONSUL_HTTP_ADDR", False),
        ("RABBITMQ_SERVICE", False),
        ("RABBITMQ_QUEUE", False),
        ("RABBITMQ_NODENAME", False),
        ("REGISTRAR_CONTAINER_PORT", False),
        ("WEB_CONCURRENCY", False),
        ("TEMP_SCALE", False),
        ("", False),
    ],
)
def test_looks_secret(variable, secret):
    assert rules.looks_secret(variable) is secret


def test_plaintext_secrets_by_name_and_by_value():
    generated = {"Zq8vR2mT5kLp9wXa3cYe7uNb4hJd6sFg", "cdb4f292-f725-441c-8675-1ea99c9dfa4f"}
    environment = {
        "RABBITMQ_DEFAULT_PASS": "anything",  # by name, whatever the value
        "BROKER_LOGIN": "Zq8vR2mT5kLp9wXa3cYe7uNb4hJd6sFg",  # by value, whatever the name
        "CONSUL_HTTP_TOKEN": "cdb4f292-f725-441c-8675-1ea99c9dfa4f",  # both
        "KEYCLOAK_URL": "https://id.example.com",
        "RABBITMQ_QUEUE": "messages",
    }
    assert rules.plaintext_secrets(environment, generated) == [
        "BROKER_LOGIN",
        "CONSUL_HTTP_TOKEN",
        "RABBITMQ_DEFAULT_PASS",
    ]


def test_plaintext_secrets_compares_whole_values_and_ignores_empty_ones():
    generated = {"s3cr3t-value", ""}
    environment = {"NOTE": "prefix-s3cr3t-value", "EMPTY": "", "OTHER": "s3cr3t"}
    assert rules.plaintext_secrets(environment, generated) == []
    assert rules.plaintext_secrets({"X": "s3cr3t-value"}, generated) == ["X"]
    assert rules.plaintext_secrets({}, generated) == []
    assert rules.plaintext_secrets({"A": "b"}, set()) == []


@pytest.mark.parametrize(
    ("args", "seconds"),
    [
        ((60, 3), 180),
        ((60, 5, 2), 120),  # M of N: the M datapoints are what it waits for
        ((60, 3, None), 180),
        ((300, 1), 300),
        ((60, 60), 3600),  # the original design: 60 one-minute periods
        (("60", "2"), 120),  # the engine may hand numbers over as strings
        ((60.0, 2.0, 2.0), 120),
    ],
)
def test_alarm_seconds(args, seconds):
    assert rules.alarm_seconds(*args) == seconds


def test_end_to_end_seconds_adds_metric_delay_task_start_and_an_instance():
    # 60 s of metric delay + the alarm (and cooldown) + 60 s to start a task (+ 180 s for a new instance)
    assert rules.end_to_end_seconds(120) == 240
    assert rules.end_to_end_seconds(120, new_instance=True) == 420
    assert rules.end_to_end_seconds(0) == 120


def test_constants_the_policy_and_components_share():
    assert rules.WORLD_CIDRS == ("0.0.0.0/0", "::/0")
    assert rules.EPHEMERAL_PORTS == (32768, 65535)
    assert rules.MAX_SCALE_OUT_ALARM_SECONDS == 300
    assert (rules.TARGET_TRACKING_OUT_DATAPOINTS, rules.TARGET_TRACKING_IN_DATAPOINTS) == (3, 15)


def test_an_app_token_may_read_services_and_nodes_and_write_services_only():
    from seaport.rules import consul_app_token_problems

    assert consul_app_token_problems({"service_prefix": {"": {"policy": "write"}}}) == []
    assert (
        consul_app_token_problems({"service_prefix": {"": {"policy": "read"}}, "node_prefix": {"": {"policy": "read"}}})
        == []
    )
    assert consul_app_token_problems({"key_prefix": {"": {"policy": "write"}}}) == ["key_prefix '' write"]
    assert consul_app_token_problems({"acl": "write"}) == ["acl '' write"]
    assert consul_app_token_problems({"node_prefix": {"": {"policy": "write"}}}) == [
        "node_prefix '' write (only agents register nodes)"
    ]


def test_the_boot_script_refuses_to_render_a_too_broad_app_token(monkeypatch):
    import pytest

    from seaport import consul_config

    broad = {**consul_config.ACL_POLICIES, "reader": {"key_prefix": {"": {"policy": "write"}}}}
    monkeypatch.setattr(consul_config, "ACL_POLICIES", broad)
    with pytest.raises(ValueError, match="reader ACL policy is too broad: key_prefix '' write"):
        consul_config.server_user_data("1.22.7", {}, {})
