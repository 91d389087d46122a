"""The Consul discovery client (apps/common/discovery.py) against the fake agent."""

from __future__ import annotations

import threading
import time

import pytest

from apps.common.discovery import (
    ConsulDiscovery,
    DiscoveryError,
    Endpoint,
    NoHealthyInstance,
    agent_url,
    service_url,
)
from tests.support.fake_consul import FakeConsul


def test_healthy_lists_passing_instances_with_the_node_address_when_the_service_has_none(fake_consul):
    fake_consul.add("weather", 7001, address="10.0.0.5")
    fake_consul.add("weather", 7002, address="")  # as the registrar registers: the node's address
    fake_consul.add("weather", 7003, status="critical")
    fake_consul.add("stocks", 7004)
    found = ConsulDiscovery(fake_consul.address).healthy("weather")
    assert sorted((e.host, e.port) for e in found) == [("10.0.0.5", 7001), ("127.0.0.1", 7002)]


def test_answers_are_cached_then_asked_again(fake_consul):
    fake_consul.add("weather", 7001)
    discovery = ConsulDiscovery(fake_consul.address, cache_seconds=0.3)
    for _ in range(5):
        assert discovery.pick("weather").port == 7001
    assert fake_consul.queries("weather") == 1
    fake_consul.clear()
    fake_consul.add("weather", 7002)
    assert discovery.pick("weather").port == 7001  # still cached
    time.sleep(0.35)
    assert discovery.pick("weather").port == 7002
    assert fake_consul.queries("weather") == 2


def test_forget_makes_the_next_pick_ask_again(fake_consul):
    fake_consul.add("weather", 7001)
    discovery = ConsulDiscovery(fake_consul.address, cache_seconds=60)
    old = discovery.pick("weather")
    fake_consul.clear()
    fake_consul.add("weather", 7002)
    discovery.forget("weather")
    assert discovery.pick("weather", avoid=old).port == 7002


def test_pick_avoids_the_instance_that_failed_when_there_is_another(fake_consul):
    fake_consul.add("weather", 7001)
    fake_consul.add("weather", 7002)
    discovery = ConsulDiscovery(fake_consul.address)
    first, second = sorted(discovery.healthy("weather"), key=lambda endpoint: endpoint.port)
    # Two instances: the one that failed is never picked (a random pick would return it half the time).
    assert {discovery.pick("weather", avoid=first) for _ in range(20)} == {second}
    assert {discovery.pick("weather", avoid=second) for _ in range(20)} == {first}


def test_picks_spread_over_every_instance(fake_consul):
    """Apps that start together must not all land on one broker node or backend: each pick is independent."""
    for port in (7001, 7002, 7003):
        fake_consul.add("rabbitmq", port)
    discovery = ConsulDiscovery(fake_consul.address, cache_seconds=60)
    picks = [discovery.pick("rabbitmq").port for _ in range(300)]
    counts = {port: picks.count(port) for port in (7001, 7002, 7003)}
    # Uniform: each about 100 of 300; below 50 would take a badly skewed choice (p < 1e-7 if uniform).
    assert min(counts.values()) >= 50, counts


def test_pick_returns_the_only_instance_even_if_it_failed(fake_consul):
    fake_consul.add("stocks", 7003)
    discovery = ConsulDiscovery(fake_consul.address)
    [only] = discovery.healthy("stocks")
    # Better to try it again than to give up: it may have been a dropped keep-alive connection.
    assert discovery.pick("stocks", avoid=only) == only


@pytest.mark.parametrize("outage", ["answers 500", "is down"])
def test_last_known_good_while_the_agent_is_unavailable(outage):
    fake = FakeConsul()
    try:
        fake.add("weather", 7001)
        discovery = ConsulDiscovery(fake.address, cache_seconds=0.1, retry_seconds=0.5, timeout=0.5)
        assert discovery.pick("weather").port == 7001
        if outage == "answers 500":
            fake.failing = True
        else:
            fake.stop()
        time.sleep(0.15)
        asked = len(fake.requests_seen)
        assert discovery.pick("weather").port == 7001  # expired, agent unavailable: last known answer
        # ...and the agent is not asked again on every call while it is unavailable.
        for _ in range(10):
            assert discovery.pick("weather").port == 7001
        assert len(fake.requests_seen) <= asked + 1
    finally:
        if outage == "answers 500":
            fake.stop()


def test_clear_error_when_the_agent_is_unreachable_and_nothing_is_known():
    fake = FakeConsul()
    address = fake.address
    fake.stop()
    with pytest.raises(DiscoveryError, match=rf"cannot ask Consul at http://{address} for 'weather'"):
        ConsulDiscovery(address, timeout=0.5).pick("weather")


def test_no_healthy_instance_is_a_clear_error_not_a_stale_answer(fake_consul):
    sid = fake_consul.add("weather", 7001)
    discovery = ConsulDiscovery(fake_consul.address, cache_seconds=60)
    discovery.pick("weather")
    fake_consul.set_status(sid, "critical")
    discovery.forget("weather")
    with pytest.raises(NoHealthyInstance, match="no healthy instance of 'weather'"):
        discovery.pick("weather")


def test_only_one_thread_refreshes_and_the_others_use_the_old_answer(fake_consul):
    fake_consul.add("weather", 7001)
    discovery = ConsulDiscovery(fake_consul.address, cache_seconds=0.1)
    discovery.pick("weather")
    time.sleep(0.15)
    fake_consul.delay = 0.6
    durations = []

    def pick():
        started = time.monotonic()
        discovery.pick("weather")
        durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=pick) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake_consul.queries("weather") == 2
    assert sorted(durations)[-2] < 0.3, durations  # only the refreshing thread waited for the agent


def test_the_acl_token_is_sent_from_the_argument_the_environment_or_a_file(fake_consul, monkeypatch, tmp_path):
    fake_consul.add("weather", 7001)
    fake_consul.required_token = "s3cret"
    with pytest.raises(DiscoveryError, match=r"refused the ACL token \(403\)"):
        ConsulDiscovery(fake_consul.address, token="wrong").pick("weather")
    assert ConsulDiscovery(fake_consul.address, token="s3cret").pick("weather").port == 7001
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "s3cret")
    assert ConsulDiscovery(fake_consul.address).pick("weather").port == 7001
    monkeypatch.delenv("CONSUL_HTTP_TOKEN")
    (tmp_path / "token").write_text("s3cret\n")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN_FILE", str(tmp_path / "token"))
    assert ConsulDiscovery(fake_consul.address).pick("weather").port == 7001
    assert fake_consul.requests_seen[-1][2] == "s3cret"


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("127.0.0.1:8500", "http://127.0.0.1:8500"),
        ("  consul.service:8500/ ", "http://consul.service:8500"),
        ("https://consul.local:8501", "https://consul.local:8501"),
        ("http://[::1]:8500", "http://[::1]:8500"),
        ("localhost", "http://localhost"),
    ],
)
def test_agent_address_forms(address, url):
    assert agent_url(address) == url


@pytest.mark.parametrize("address", ["ftp://host:21", "unix:///run/consul.sock", "host:port", "http://h:8500/v1"])
def test_bad_agent_addresses_are_named_in_the_error(address):
    with pytest.raises(DiscoveryError, match=r"CONSUL_HTTP_ADDR=.* is not a Consul agent address"):
        ConsulDiscovery(address)


def test_agent_address_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "10.1.2.3:8500")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    assert ConsulDiscovery().base_url == "https://10.1.2.3:8500"
    monkeypatch.delenv("CONSUL_HTTP_ADDR")
    monkeypatch.delenv("CONSUL_HTTP_SSL")
    assert ConsulDiscovery().base_url == "http://127.0.0.1:8500"


def test_endpoint_urls_bracket_ipv6():
    assert Endpoint("10.0.0.5", 80).url() == "http://10.0.0.5:80"
    assert Endpoint("fd00::5", 8080).url() == "http://[fd00::5]:8080"


def test_service_url_prefers_the_explicit_variable(fake_consul, monkeypatch):
    fake_consul.add("weather", 7001)
    discovery = ConsulDiscovery(fake_consul.address)
    assert service_url("WEATHER_URL", "weather", discovery) == "http://127.0.0.1:7001"
    monkeypatch.setenv("WEATHER_URL", "http://weather.test:81/")
    assert service_url("WEATHER_URL", "weather", None) == "http://weather.test:81"
    monkeypatch.delenv("WEATHER_URL")
    with pytest.raises(DiscoveryError, match="WEATHER_URL is not set"):
        service_url("WEATHER_URL", "weather", None)
