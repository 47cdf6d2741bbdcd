"""The S3 server in the tests is real MinIO: CRUD, listing and conditional requests."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def test_put_get_list_delete(s3):
    c = s3.client()
    for k in range(3):
        c.put_object(Bucket=s3.bucket, Key=f"snapshots/{k}/manifest.json", Body=f"v{k}".encode())
    assert c.get_object(Bucket=s3.bucket, Key="snapshots/1/manifest.json")["Body"].read() == b"v1"
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=s3.bucket, Prefix="snapshots/")["Contents"]]
    assert keys == [f"snapshots/{k}/manifest.json" for k in range(3)]
    c.delete_object(Bucket=s3.bucket, Key="snapshots/0/manifest.json")
    left = c.list_objects_v2(Bucket=s3.bucket, Prefix="snapshots/")["Contents"]
    assert [o["Key"] for o in left] == ["snapshots/1/manifest.json", "snapshots/2/manifest.json"]


def test_conditional_get_with_matching_etag_returns_304(s3):
    c = s3.client()
    etag = c.put_object(Bucket=s3.bucket, Key="LATEST", Body=b"000000000001")["ETag"]
    with pytest.raises(ClientError) as err:
        c.get_object(Bucket=s3.bucket, Key="LATEST", IfNoneMatch=etag)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    # A different ETag gets the body.
    body = c.get_object(Bucket=s3.bucket, Key="LATEST", IfNoneMatch='"0000"')["Body"].read()
    assert body == b"000000000001"


def test_put_if_none_match_star_refuses_to_overwrite(s3):
    c = s3.client()
    c.put_object(Bucket=s3.bucket, Key="snapshots/7/manifest.json", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as err:
        c.put_object(Bucket=s3.bucket, Key="snapshots/7/manifest.json", Body=b"second",
                     IfNoneMatch="*")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    body = c.get_object(Bucket=s3.bucket, Key="snapshots/7/manifest.json")["Body"].read()
    assert body == b"first"
