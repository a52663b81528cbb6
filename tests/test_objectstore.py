"""The object store backend: its configuration, its failures, and workers sharing it.

Everything that talks to a store talks to a real one (SeaweedFS's S3 gateway, see
``tests/objectstore.py``), with signed requests.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import obstore
import pytest
from temporalio.exceptions import ApplicationError

from duragent.activities.errors import StoreErrorType
from duragent.activities.models import Message, Role
from duragent.activities.objectstore import ObjectBlobStore, ObjectStoreConfig
from duragent.activities.store import TranscriptStore
from duragent.worker.settings import Settings, SettingsError
from tests.conftest import Harness
from tests.objectstore import ObjectStoreServer, _free_ports
from tests.test_durability import hand_over

KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE123", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG"}


# ---- configuration


def test_a_url_and_the_aws_variables_make_the_config() -> None:
    env = {**KEYS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9000/", "AWS_DEFAULT_REGION": "eu-west-3"}
    config = ObjectStoreConfig.from_url("s3://my-bucket//transcripts/prod/", env)
    assert (config.bucket, config.prefix) == ("my-bucket", "transcripts/prod")
    assert (config.endpoint, config.region) == ("http://127.0.0.1:9000", "eu-west-3")
    assert (config.access_key, config.secret_key) == tuple(KEYS.values())
    assert config.url == "s3://my-bucket/transcripts/prod"
    assert config.child("agent-7", "/work/").prefix == "transcripts/prod/agent-7/work"
    assert KEYS["AWS_SECRET_ACCESS_KEY"] not in repr(config)
    assert KEYS["AWS_ACCESS_KEY_ID"] not in repr(config)


def test_the_s3_endpoint_and_region_variables_win() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://other:1",
        "AWS_ENDPOINT_URL_S3": "https://s3.example.test",
        "AWS_REGION": "ap-south-1",
        "AWS_DEFAULT_REGION": "eu-west-3",
    }
    config = ObjectStoreConfig.from_url("s3://bucket", env)
    assert (config.endpoint, config.region, config.prefix) == (
        "https://s3.example.test",
        "ap-south-1",
        "",
    )
    assert config.access_key is None  # left to the SDK's chain (roles)


@pytest.mark.parametrize(
    ("url", "env", "says"),
    [
        ("/var/store", {}, "DURAGENT_STORE must be s3://bucket/prefix"),
        ("gs://bucket/x", {}, "expected s3://bucket/prefix"),
        ("s3://", {}, "is not a bucket name"),
        ("s3://Bad_Bucket/x", {}, "is not a bucket name"),
        ("s3://bucket:9000/x", {}, "expected s3://bucket/prefix"),
        ("s3://key:secret@bucket/x", {}, "put no credentials in the URL"),
        ("s3://bucket/x", {"AWS_ACCESS_KEY_ID": "AKID"}, "set both AWS_ACCESS_KEY_ID"),
        ("s3://bucket/x", {"AWS_ENDPOINT_URL": "localhost:9000"}, "AWS_ENDPOINT_URL must be"),
    ],
)
def test_a_store_that_cannot_work_is_one_clear_settings_error(
    url: str, env: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"DURAGENT_STORE": url, **env})
    message = str(caught.value)
    assert says in message and "\n" not in message
    assert "secret" not in message.replace("AWS_SECRET_ACCESS_KEY", "")


def test_settings_select_the_object_store_and_redact_its_keys() -> None:
    settings = Settings.from_env({"DURAGENT_STORE": "s3://bucket/p", "DURAGENT_STORE_DIR": "/d"})
    assert settings.object_store is not None and settings.object_store.url == "s3://bucket/p"
    assert settings.store_dir == Path("/d")  # still read: DURAGENT_STORE wins where set
    keyed = Settings.from_env({"DURAGENT_STORE": "s3://bucket", **KEYS})
    assert set(KEYS.values()) <= set(keyed.secrets)
    assert Settings.from_env({}).object_store is None


# ---- a real store


def msg(i: int) -> Message:
    return Message(role=Role.USER if i % 2 else Role.ASSISTANT, content=f"message {i}")


async def test_a_cold_worker_resolves_what_another_wrote(
    object_store: ObjectStoreServer, s3_bucket: ObjectStoreConfig
) -> None:
    config = s3_bucket.child("transcripts")
    writer = TranscriptStore(ObjectBlobStore(config), snapshot_every=4)
    ref = None
    for i in range(9):
        ref = await writer.append(ref, [msg(i)])
    assert ref is not None
    # Another worker: its own client and an empty cache, only the URL and keys in common.
    cold = TranscriptStore(ObjectBlobStore(object_store.config(config.bucket, "transcripts")))
    assert await cold.load(ref) == [msg(i) for i in range(9)]
    # The nodes are ordinary objects under the prefix, named by their content.
    listed = obstore.list(s3_bucket.client(), "transcripts").collect()
    keys = {meta["path"] for meta in listed}
    assert f"transcripts/{ref}" in keys and len(keys) == 9


async def test_a_store_that_cannot_be_reached_is_retried() -> None:
    (port,) = _free_ports(1)  # nothing listens there
    config = ObjectStoreConfig.from_url(
        "s3://bucket/p", {**KEYS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    )
    blobs = ObjectBlobStore(config)
    for attempt in (lambda: blobs.put(b"x"), lambda: blobs.get("a" * 64)):
        with pytest.raises(ApplicationError) as caught:
            await attempt()
        assert caught.value.type == StoreErrorType.UNAVAILABLE
        assert not caught.value.non_retryable
        assert "s3://bucket/p/" in caught.value.message
        assert all(secret not in caught.value.message for secret in KEYS.values())


async def test_wrong_keys_fail_without_retrying_or_showing_them(
    object_store: ObjectStoreServer, s3_bucket: ObjectStoreConfig
) -> None:
    wrong = dataclasses.replace(s3_bucket, secret_key="not-the-secret-at-all")
    with pytest.raises(ApplicationError) as caught:
        await ObjectBlobStore(wrong).put(b"x")
    assert caught.value.type == StoreErrorType.DENIED and caught.value.non_retryable
    assert "not-the-secret-at-all" not in caught.value.message
    assert object_store.access_key not in caught.value.message


async def test_a_bucket_that_does_not_exist_fails_the_write(
    object_store: ObjectStoreServer,
) -> None:
    missing = object_store.config("never-created-bucket", "p")
    with pytest.raises(ApplicationError) as caught:
        await ObjectBlobStore(missing).put(b"x")
    assert caught.value.type == StoreErrorType.MISCONFIGURED and caught.value.non_retryable


# ---- workers sharing it


async def test_a_worker_elsewhere_reads_the_transcript_from_the_object_store(
    harness: Harness, tmp_path: Path, s3_bucket: ObjectStoreConfig
) -> None:
    here = dataclasses.replace(harness.settings(), object_store=s3_bucket)
    # The second worker has its own directory (another machine) but the same object store.
    elsewhere = dataclasses.replace(here, store_dir=tmp_path / "other-store")
    failures = await hand_over(harness, here, elsewhere)
    assert not any("is not in the store" in f for f in failures), failures
    # Nothing went to either worker's directory.
    assert not (tmp_path / "other-store").exists() and not (tmp_path / "store").exists()
