"""S3 backend against moto (KMS key, Object Lock bucket) and, for what moto cannot do, botocore's Stubber."""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from clinops.evidence import (
    DamagedLogError,
    EvidenceEntry,
    EvidenceError,
    EvidenceLog,
    EvidenceUnavailable,
    KmsMacKey,
    S3Store,
    SsmHeadStore,
    parse_s3_uri,
)
from tests.clinops.evidence.helpers import CI, KEY, MODEL, STORY, reseal, stepping_clock

PREFIX, STACK = "evidence", "prod"
_buckets = itertools.count()


def key(seq: int) -> str:
    return f"evidence/prod/{seq:012d}.json"


def listing(*seqs: int) -> dict[str, Any]:
    return {"Contents": [{"Key": key(seq)} for seq in seqs], "IsTruncated": False}


@pytest.fixture(scope="module")
def moto_account() -> Iterator[dict[str, str]]:
    """One emulated account per module (creating a KMS key costs up to a second); each test gets its own bucket
    and its own head parameter. Two keys, as the platform has: SSE-KMS for the objects, HMAC for the entries."""
    with mock_aws():
        kms = boto3.client("kms", region_name="us-east-1")
        mac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
        yield {"key_id": kms.create_key()["KeyMetadata"]["KeyId"], "mac_key_id": mac}


@pytest.fixture
def aws(moto_account: dict[str, str]) -> dict[str, Any]:
    number = next(_buckets)
    bucket = f"clinops-prod-evidence-{number}"
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 2190}},
        },
    )
    return {
        "s3": s3,
        "kms": boto3.client("kms", region_name="us-east-1"),
        "ssm": boto3.client("ssm", region_name="us-east-1"),
        "bucket": bucket,
        "head_parameter": f"/clinops/{STACK}/evidence/head-{number}",
        **moto_account,
    }


def s3_log(aws: dict[str, Any], bucket: str | None = None, **options: Any) -> EvidenceLog:
    defaults = {
        "kms_key_id": aws["key_id"],
        "mac_key_id": aws["mac_key_id"],
        "client": aws["s3"],
        "kms_client": aws["kms"],
        "ssm_client": aws["ssm"],
        "head_parameter": aws["head_parameter"],
    }
    return EvidenceLog.s3(bucket or aws["bucket"], PREFIX, STACK, **(defaults | options))


def filled(aws: dict[str, Any]) -> EvidenceLog:
    log = s3_log(aws, clock=stepping_clock())
    for event in STORY:
        log.append(**event)
    return log


def kinds_and_seqs(log: EvidenceLog) -> list[tuple[str, int | None]]:
    return [(str(p.kind), p.seq) for p in log.verify().problems]


def test_appends_land_under_prefix_stack_seq_encrypted_and_locked(aws: dict[str, Any]) -> None:
    log = filled(aws)
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["bucket"])["Contents"]]
    assert keys == [f"evidence/prod/{seq:012d}.json" for seq in range(len(STORY))]
    stored = aws["s3"].get_object(Bucket=aws["bucket"], Key=keys[2])
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert stored["SSEKMSKeyId"].endswith(aws["key_id"])
    assert stored["ObjectLockMode"] == "COMPLIANCE"  # from the bucket default: nothing set per object
    assert stored["Body"].read() == log.entries()[2].to_bytes()


def test_verify_records_the_bucket_lock_configuration(aws: dict[str, Any]) -> None:
    report = filled(aws).verify()
    assert report.ok and report.entries == len(STORY) and report.warnings == []
    assert report.location["bucket"] == aws["bucket"] and report.location["prefix"] == "evidence/prod/"
    rule = report.location["object_lock"]["Rule"]["DefaultRetention"]
    assert (rule["Mode"], rule["Days"]) == ("COMPLIANCE", 2190)


def test_if_none_match_keeps_an_existing_entry(aws: dict[str, Any]) -> None:
    log = filled(aws)
    store: S3Store = log.store  # type: ignore[assignment]
    before = store.read(0)
    assert store.create(0, b"replacement") is False  # moto honours IfNoneMatch='*' with 412 PreconditionFailed
    assert store.read(0) == before
    assert len(aws["s3"].list_object_versions(Bucket=aws["bucket"], Prefix=store.key(0))["Versions"]) == 1


def test_an_overwrite_outside_clinops_is_reported_with_the_locked_original(aws: dict[str, Any]) -> None:
    log = filled(aws)
    body = aws["s3"].get_object(Bucket=aws["bucket"], Key=key(2))["Body"].read().replace(b"of v3", b"of v4")
    aws["s3"].put_object(Bucket=aws["bucket"], Key=key(2), Body=body)
    assert kinds_and_seqs(log) == [("altered", 2), ("overwritten", 2)]


def test_a_delete_outside_clinops_is_reported(aws: dict[str, Any]) -> None:
    log = filled(aws)
    aws["s3"].delete_object(Bucket=aws["bucket"], Key=key(1))  # leaves a delete marker
    assert kinds_and_seqs(log) == [("deleted", 1), ("missing", 1)]


def test_a_bucket_without_object_lock_is_a_warning(aws: dict[str, Any]) -> None:
    aws["s3"].create_bucket(Bucket="clinops-scratch")
    log = EvidenceLog.s3(
        "clinops-scratch",
        "",
        STACK,
        kms_key_id=aws["key_id"],
        mac_key_id=aws["mac_key_id"],
        client=aws["s3"],
        kms_client=aws["kms"],
        ssm_client=aws["ssm"],
        head_parameter=aws["head_parameter"],
    )
    log.append("drill", model=MODEL, actor=CI, reason="rollback drill")
    report = log.verify()
    assert report.ok and report.location["object_lock"] is None
    assert report.warnings == ["the bucket has no Object Lock configuration: entries are not write-once"]
    assert report.location["prefix"] == "prod/"


def test_a_missing_bucket_is_unusable_input(aws: dict[str, Any]) -> None:
    with pytest.raises(EvidenceUnavailable, match=r"HeadBucket failed: (NoSuchBucket|404)"):
        s3_log(aws, bucket="no-such-bucket").verify()


def test_writing_needs_the_kms_key(aws: dict[str, Any]) -> None:
    log = s3_log(aws, kms_key_id=None)
    with pytest.raises(EvidenceError, match="KMS key id"):
        log.append("drill", model=MODEL, actor=CI, reason="rollback drill")


class CountingS3Store(S3Store):
    conflicts = 0

    def create(self, seq: int, data: bytes) -> bool:
        created = super().create(seq, data)
        self.conflicts += not created
        return created


@pytest.fixture
def atomic_conditional_puts(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto checks IfNoneMatch and stores the object in two unlocked steps: measured with eight threads, 2 of 30
    races had two winners. S3 evaluates the condition atomically, so make moto's PutObject atomic too - the
    test is about our retry logic, not about moto's emulation."""
    from moto.s3.responses import S3Response

    lock = threading.Lock()
    original = S3Response.put_object

    def atomic_put_object(self: S3Response) -> Any:
        with lock:
            return original(self)

    monkeypatch.setattr(S3Response, "put_object", atomic_put_object)


@pytest.mark.usefixtures("atomic_conditional_puts")
def test_threads_appending_to_s3_build_one_contiguous_chain(aws: dict[str, Any]) -> None:
    threads_count, per_thread = 4, 8
    barrier = threading.Barrier(threads_count)
    failures: list[BaseException] = []
    stores: list[CountingS3Store] = []

    def writer(index: int) -> None:
        store = CountingS3Store(aws["bucket"], PREFIX, STACK, kms_key_id=aws["key_id"], client=boto3.client("s3"))
        stores.append(store)
        head = SsmHeadStore(aws["head_parameter"], boto3.client("ssm", region_name="us-east-1"))
        log = EvidenceLog(store, STACK, key=KmsMacKey(aws["mac_key_id"], aws["kms"]), head_store=head)
        barrier.wait()
        try:
            for n in range(per_thread):
                log.append("drill", model=MODEL, actor=CI, reason=f"thread {index} drill {n}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sum(store.conflicts for store in stores) > 0  # the writers did collide, and recovered
    log = s3_log(aws)
    assert log.verify().ok
    entries = log.entries()
    assert [e.seq for e in entries] == list(range(threads_count * per_thread))
    assert sorted(e.reason for e in entries) == sorted(
        f"thread {i} drill {n}" for i in range(threads_count) for n in range(per_thread)
    )


BUCKET = "clinops-prod-evidence"  # the stubbed tests never reach an emulator


# -- Stubber: the exact S3 responses of a lost race, which moto cannot produce on demand ----------------------


def offline_client() -> Any:
    return boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def test_precondition_failed_and_conflict_make_append_reread_the_head_and_retry() -> None:
    from clinops.evidence import GENESIS_HASH, EvidenceEntry

    def entry(seq: int, prev: str) -> EvidenceEntry:
        return EvidenceEntry.seal(
            KEY,
            seq=seq,
            kind="gate",
            stack=STACK,
            model=MODEL,
            actor=CI,
            reason=f"rival {seq}",
            at=stepping_clock()(),
            prev_hash=prev,
        )

    first = entry(0, GENESIS_HASH)
    second = entry(1, first.hash)
    third = entry(2, second.hash)
    client = offline_client()
    put = {
        "Bucket": BUCKET,
        "Key": ANY,
        "Body": ANY,
        "IfNoneMatch": "*",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/evidence",
        "ChecksumAlgorithm": "SHA256",
        "ContentType": "application/json",
    }
    with Stubber(client) as stub:
        stub.add_response("list_objects_v2", listing(0), {"Bucket": BUCKET, "Prefix": "evidence/prod/"})
        stub.add_response("get_object", {"Body": body(first.to_bytes())}, {"Bucket": BUCKET, "Key": key(0)})
        stub.add_client_error("put_object", "PreconditionFailed", http_status_code=412, expected_params=put)
        stub.add_response(
            "list_objects_v2", listing(1), {"Bucket": BUCKET, "Prefix": "evidence/prod/", "StartAfter": key(0)}
        )
        stub.add_response("get_object", {"Body": body(second.to_bytes())}, {"Bucket": BUCKET, "Key": key(1)})
        stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409, expected_params=put)
        stub.add_response(
            "list_objects_v2", listing(2), {"Bucket": BUCKET, "Prefix": "evidence/prod/", "StartAfter": key(1)}
        )
        stub.add_response("get_object", {"Body": body(third.to_bytes())}, {"Bucket": BUCKET, "Key": key(2)})
        stub.add_response("put_object", {}, {**put, "Key": key(3)})
        naps: list[float] = []
        log = EvidenceLog.s3(
            BUCKET,
            PREFIX,
            STACK,
            kms_key_id="alias/evidence",
            mac_key_id="unused",
            client=client,
            key=KEY,
            head_store=None,
            sleep=naps.append,
        )
        ours = log.append("release", model=MODEL, actor=CI, reason="ours")
        stub.assert_no_pending_responses()
    assert (ours.seq, ours.prev_hash) == (3, third.hash)
    assert len(naps) == 2


def test_other_put_errors_are_not_retried() -> None:
    client = offline_client()
    with Stubber(client) as stub:
        stub.add_response("list_objects_v2", listing())
        stub.add_client_error("put_object", "AccessDenied", "Access Denied", http_status_code=403)
        log = EvidenceLog.s3(
            BUCKET,
            PREFIX,
            STACK,
            kms_key_id="alias/evidence",
            mac_key_id="unused",
            client=client,
            key=KEY,
            head_store=None,
        )
        with pytest.raises(EvidenceUnavailable, match=r"PutObject \S+ failed: AccessDenied"):
            log.append("release", model=MODEL, actor=CI, reason="ours")
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("s3://b/p", ("b", "p")), ("s3://b", ("b", "")), ("s3://b/a/b/", ("b", "a/b"))],
)
def test_s3_uris(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["b/p", "s3://", "s3:///p", "https://b/p"])
def test_bad_s3_uris(uri: str) -> None:
    with pytest.raises(ValueError, match="not an S3 location"):
        parse_s3_uri(uri)


# -- the faults of issue 14, on S3: each found by a fresh verifier with no anchor kept by hand ------------------


def test_a_deleted_last_entry_is_found_by_the_published_head(aws: dict[str, Any]) -> None:
    filled(aws)
    aws["s3"].delete_object(Bucket=aws["bucket"], Key=key(len(STORY) - 1))  # truncation: the tail is gone
    assert kinds_and_seqs(s3_log(aws)) == [("deleted", 5), ("truncated", 5)]


def test_a_rewritten_last_entry_is_found(aws: dict[str, Any]) -> None:
    log = filled(aws)
    last = log.entries()[-1]
    rewritten = reseal(last.model_copy(update={"reason": "nothing happened"}), KEY)  # someone else's key
    aws["s3"].put_object(Bucket=aws["bucket"], Key=key(last.seq), Body=rewritten.to_bytes())
    report = s3_log(aws).verify()
    assert [(str(p.kind), p.seq) for p in report.problems] == [
        ("anchor-mismatch", 5),
        ("bad-mac", 5),
        ("overwritten", 5),
    ]
    overwritten = next(p for p in report.problems if p.kind == "overwritten")
    assert "sealed version(s) ['" in overwritten.message  # the locked original is named and still verifies


def test_a_forged_append_without_the_key_is_found(aws: dict[str, Any]) -> None:
    log = filled(aws)
    head = log.entries()[-1]
    forged = EvidenceEntry.seal(
        KEY,
        seq=head.seq + 1,
        kind="approval",
        stack=STACK,
        model=MODEL,
        actor=CI,
        reason="forged approval",
        at=stepping_clock()(),
        prev_hash=head.hash,
    )
    aws["s3"].put_object(Bucket=aws["bucket"], Key=key(forged.seq), Body=forged.to_bytes())
    assert kinds_and_seqs(s3_log(aws)) == [("bad-mac", 6)]
    with pytest.raises(DamagedLogError, match="MAC"):
        s3_log(aws).append("drill", model=MODEL, actor=CI, reason="rollback drill")


def test_a_head_published_without_the_key_is_found(aws: dict[str, Any]) -> None:
    log = filled(aws)
    first = log.entries()[0]
    aws["ssm"].put_parameter(
        Name=aws["head_parameter"], Value=f"0:{first.hash}:{'A' * 43}=", Type="String", Overwrite=True
    )
    assert kinds_and_seqs(s3_log(aws)) == [("head-forged", 0)]


def test_verify_without_the_rights_to_list_versions_or_read_the_lock_is_not_ok(aws: dict[str, Any]) -> None:
    """What verify with the approver's or deployer's old rights looked like: a deleted entry reported as ok."""
    filled(aws)
    aws["s3"].delete_object(Bucket=aws["bucket"], Key=key(2))
    client = boto3.client("s3", region_name="us-east-1")

    def access_denied(**_: Any) -> tuple[Any, dict[str, Any]]:
        error = {"Error": {"Code": "AccessDenied", "Message": "denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return AWSResponse("https://s3", 403, {}, None), error

    client.meta.events.register("before-call.s3.ListObjectVersions", access_denied)
    client.meta.events.register("before-call.s3.GetObjectLockConfiguration", access_denied)
    report = s3_log(aws, client=client).verify()
    assert not report.ok
    assert [(str(p.kind), p.seq) for p in report.problems] == [
        ("unverifiable", None),
        ("unverifiable", None),
        ("missing", 2),
    ]
