"""A store that stays down: once one call has spent its whole retry budget on transient errors,
later calls in the same process fail at once (one probe per PROBE_SECONDS), so a run over a dead
store fails in about one budget instead of one budget per file; the first success ends it."""

from __future__ import annotations

import pytest
from tests.support.eventually import eventually


@pytest.fixture
def retry(monkeypatch):
    """The retry policy with a 1 s budget, 2 attempts per client call, and its outage state reset
    (and restored afterwards: other tests in this process must not inherit an outage)."""
    from renamer_ray.io.storage import retry

    monkeypatch.setattr(retry, "STORAGE_RETRY_SECONDS", 1.0)
    monkeypatch.setattr(retry, "S3_ATTEMPTS", 2)
    monkeypatch.setattr(retry, "_outages", {})
    return retry


@pytest.fixture
def storage(retry):
    from renamer_ray.io import storage

    return storage


def test_a_store_that_stays_down_is_not_waited_on_for_every_file(storage, retry, s3, s3_endpoint):
    from tests.support.faulty_proxy import FaultyProxy

    s3.create_bucket(Bucket="outage-stays")
    for i in range(10):
        s3.put_object(Bucket="outage-stays", Key=f"in/{i}.jpg", Body=b"photo %d" % i)
    proxy = FaultyProxy(s3_endpoint, refuse_gets="/outage-stays/in/")
    try:
        config = storage.StorageConfig(region="us-east-1", endpoint_url=proxy.url)
        locations = [storage.open_location(f"s3://outage-stays/in/{i}.jpg", config) for i in range(10)]
        errors, requests = [], []  # each read's error, and the requests it sent the store
        for location in locations:
            before = proxy.requests
            with pytest.raises(OSError) as failed:
                storage.read_bytes(location)
            errors.append(failed.value)
            requests.append(proxy.requests - before)
        tried = proxy.refused
        assert all(storage.is_transient(error) for error in errors)
        # The first read spends the budget (a second may end the stretch it began); every later read
        # is not tried: no request reaches the store (each would spend the budget again).
        reached = len([count for count in requests if count])
        assert 1 <= reached <= 2 and all(requests[:reached]), requests
        for error in errors[reached:]:
            assert isinstance(error, storage.StorageUnavailable) and "not tried" in str(error), error
        assert tried < 5 * retry.S3_ATTEMPTS, f"{tried} requests for 10 reads"

        proxy.refuse_gets = None  # back: within PROBE_SECONDS reads still fail at once ...
        with pytest.raises(storage.StorageUnavailable):
            storage.read_bytes(locations[0])
        # ... then one probe goes through, and every read works again.
        assert eventually(lambda: storage.read_bytes(locations[0]), "a probe goes through",
                          timeout=retry.PROBE_SECONDS + 5, every=0.2,
                          retry_on=(storage.StorageUnavailable,)) == b"photo 0"
        assert [storage.read_bytes(location) for location in locations[1:3]] == [b"photo 1", b"photo 2"]
    finally:
        proxy.close()


def test_an_outage_shorter_than_the_budget_opens_nothing(storage, retry):
    """Errors that stop before the budget is spent are retried as before, and a success ends the
    stretch: the next failure starts a new one."""
    answers = iter([ConnectionResetError("reset"), ConnectionResetError("reset"), b"ok",
                    ConnectionResetError("reset"), b"ok again"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert storage.retrying(call, scope="a store") == b"ok"
    assert retry._outages["a store"].since is None
    assert storage.retrying(call, scope="a store") == b"ok again"


def test_one_store_down_never_refuses_another_or_local_files(storage, retry, tmp_path):
    """An S3 endpoint that stays down is refused at once; local files and another endpoint are
    still tried (a run from a dead S3 into a local folder still writes its manifest)."""
    def down():
        raise ConnectionResetError("reset")

    with pytest.raises(ConnectionResetError):
        storage.retrying(down, scope="s3 http://dead")  # errors for the whole budget (1 s)
    with pytest.raises(storage.StorageUnavailable):  # a call whose budget that stretch has outlasted
        storage.retrying(lambda: b"never asked", scope="s3 http://dead", budget=0.1)
    assert storage.retrying(lambda: b"fine", scope="s3 http://alive", budget=0.1) == b"fine"
    (tmp_path / "photo.jpg").write_bytes(b"local bytes")
    assert storage.read_bytes(storage.open_location(str(tmp_path / "photo.jpg"))) == b"local bytes"
    dead = storage.open_location("s3://bucket/key.jpg", storage.StorageConfig("us-east-1", "http://dead"))
    assert dead.storage.outage_scope == "s3 http://dead" and storage.open_location(str(tmp_path)).storage.outage_scope is None
