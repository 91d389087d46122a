"""benchmarks.messaging compares a run with the one before only when both ran the same broker release.

``make bench`` runs RabbitMQ 4.3 by default and ``make bench RABBITMQ=debian`` the machine's 3.10: their
ratios differ by more than the 5 % two runs must agree within, so comparing them would report noise that is
really the broker.
"""

from __future__ import annotations

from benchmarks import messaging

RATES = {"b": 20_000.0, "c": 18_000.0, "d": 30_000.0, "e": 27_000.0}


def rounds(count: int = 2) -> list[dict]:
    return [
        {
            "rates": dict(RATES),
            "runs": {key: [value] for key, value in RATES.items()},
            "client_us": dict.fromkeys("bcde", 30.0),
            "broker_us": dict.fromkeys("bcde", 35.0),
            "ff_lost": 0,
            "published": {f"m{n}"},
            "received": {f"m{n}"},
        }
        for n in range(count)
    ]


def report(previous: dict | None, version: str = "4.3.6") -> dict:
    return messaging.report(rounds(), 17.0, {}, 60_000, 300, 2, "quorum", version, previous)


def test_a_previous_run_on_the_same_release_is_compared():
    figures = report({"finished_at": "earlier", "rabbitmq": "4.3.6", **messaging.ratios_of(RATES)})
    assert figures["spread_vs_previous"] == {name: 0.0 for name in messaging.RATIOS}
    assert figures["targets_met"]["agrees_with_previous_run"] is True


def test_a_previous_run_on_another_release_is_not_compared():
    previous = {"finished_at": "earlier", "rabbitmq": "3.10.8", **dict.fromkeys(messaging.RATIOS, 0.5)}
    figures = report(previous)
    assert figures["spread_vs_previous"] is None
    assert "agrees_with_previous_run" not in figures["targets_met"]
    assert figures["previous_run_other_broker"] == "3.10.8"
