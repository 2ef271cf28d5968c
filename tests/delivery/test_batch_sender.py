"""The batch sender alone: what each kind of TransportError makes it do, with no store.

A scripted transport answers each request with the next entry of its script (an error to
raise, or None to accept); the sender needs nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from newsletter.delivery import BatchOutcome, CampaignMessage, ErrorKind, Recipient, TransportError
from newsletter.delivery.batch_sender import BatchSender, RetryPolicy

MESSAGE = CampaignMessage(
    campaign_id=1,
    subject="s",
    html="<p>h</p>",
    text="t",
    from_email="a@example.org",
    from_name="A",
    reply_to=None,
    category="campaign-1",
    sending_domain="example.org",
)


class Scripted:
    """Answers each request with the next scripted error, or accepts it when the script says None."""

    name = "scripted"

    def __init__(self, *script: TransportError | None) -> None:
        self.script = list(script)
        self.requests: list[tuple[list[int], object | None]] = []

    def prepare(self, message: CampaignMessage, recipients: Sequence[Recipient]) -> object | None:
        return [r.delivery_id for r in recipients]

    def send_batch(
        self, message: CampaignMessage, recipients: Sequence[Recipient], prepared: object | None = None
    ) -> BatchOutcome:
        self.requests.append(([r.delivery_id for r in recipients], prepared))
        error = self.script.pop(0) if self.script else None
        if error is not None:
            raise error
        return BatchOutcome(sent={r.delivery_id: "msg" for r in recipients})

    def close(self) -> None:
        pass


class CountingThrottle:
    def __init__(self) -> None:
        self.slowed = self.recovered = 0

    def slow_down(self) -> None:
        self.slowed += 1

    def recover(self) -> None:
        self.recovered += 1


def people(n: int) -> list[Recipient]:
    return [Recipient(i, f"p{i}@example.org", None, {}, f"https://n.example/u/{i}") for i in range(n)]


def sender(transport: Scripted, **kwargs: object) -> tuple[BatchSender, list[float]]:
    slept: list[float] = []
    retry = RetryPolicy(max_attempts=3, base_seconds=0.0, cap_seconds=1.0)  # waits only when told to
    return BatchSender(transport, MESSAGE, retry, sleep=slept.append, **kwargs), slept  # type: ignore[arg-type]


def test_pause_stops_the_batch_and_is_handed_back() -> None:
    error = TransportError("key rejected", kind=ErrorKind.PAUSE, status=401)
    outcome, ambiguous, pause = sender(Scripted(error))[0].send(people(3))
    assert pause is error and outcome == BatchOutcome() and ambiguous == []


def test_ambiguous_flags_the_whole_batch_and_never_resends() -> None:
    transport = Scripted(TransportError("no answer", kind=ErrorKind.AMBIGUOUS))
    outcome, ambiguous, pause = sender(transport)[0].send(people(3))
    assert ambiguous == [0, 1, 2] and pause is None and not outcome.sent
    assert len(transport.requests) == 1


def test_rejected_recipients_fail_and_the_rest_go_in_a_new_request() -> None:
    transport = Scripted(
        TransportError(
            "2 refused",
            kind=ErrorKind.REJECTED,
            status=400,
            rejected={1: "personalizations.1.to.0.email: bad", 3: "personalizations.3.to.0.email: bad"},
        )
    )
    outcome, _, _ = sender(transport)[0].send(people(4), prepared="the prepared body")
    assert outcome.failed == {1: "personalizations.1.to.0.email: bad", 3: "personalizations.3.to.0.email: bad"}
    assert set(outcome.sent) == {0, 2}
    assert transport.requests == [([0, 1, 2, 3], "the prepared body"), ([0, 2], None)]


def test_split_halves_until_the_bad_recipient_stands_alone() -> None:
    split = TransportError("refused", kind=ErrorKind.SPLIT, status=400)
    transport = Scripted(split, None, split, None, split)  # 0-3 refused; 0-1 fine; 2-3 refused; 2 fine; 3 alone
    outcome, _, _ = sender(transport)[0].send(people(4))
    assert set(outcome.sent) == {0, 1, 2} and outcome.failed == {3: "refused"}


@pytest.mark.parametrize("kind", [ErrorKind.RETRYABLE, ErrorKind.RATE_LIMITED])
def test_retried_kinds_go_again_with_the_same_request(kind: ErrorKind) -> None:
    throttle = CountingThrottle()
    transport = Scripted(TransportError("later", kind=kind, retry_after=2.0))
    renewed: list[bool] = []
    one, slept = sender(transport, throttle=throttle, before_retry=lambda: renewed.append(True))
    outcome, _, _ = one.send(people(2), prepared="body")
    assert set(outcome.sent) == {0, 1} and slept == [2.0] and renewed == [True]
    assert [prepared for _, prepared in transport.requests] == ["body", "body"]
    assert throttle.slowed == (1 if kind is ErrorKind.RATE_LIMITED else 0) and throttle.recovered == 1


def test_retries_are_bounded_then_everyone_fails() -> None:
    busy = TransportError("server error (503)", kind=ErrorKind.RETRYABLE, status=503)
    outcome, _, _ = sender(Scripted(busy, busy, busy))[0].send(people(2))
    assert outcome.failed == {
        0: "server error (503) (after 3 attempt(s))",
        1: "server error (503) (after 3 attempt(s))",
    }


def test_permanent_fails_the_batch_at_once() -> None:
    transport = Scripted(TransportError("SendGrid answered 404", kind=ErrorKind.PERMANENT, status=404))
    outcome, _, _ = sender(transport)[0].send(people(2))
    assert set(outcome.failed) == {0, 1} and len(transport.requests) == 1


def test_the_error_is_one_type_whose_repr_says_its_kind() -> None:
    error = TransportError("rate limit", kind=ErrorKind.RATE_LIMITED, status=429, retry_after=3.0)
    assert repr(error) == "TransportError('rate limit', kind=RATE_LIMITED, status=429)"
    assert TransportError("x").kind is ErrorKind.PERMANENT and TransportError("x").rejected == {}
