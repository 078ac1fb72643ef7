"""scripts/bench-copy's request counts, against recorded reqstats.py lines."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from bench_requests import requests  # noqa: E402


def test_a_mount_is_one_request_not_two():
    # A mount copy as the registry logged it: 3 POSTs, all three of them mount attempts.
    line = "HEAD_blob=3 HEAD_manifest=1 POST_blob-upload=3 PUT_manifest=1 mount_attempts=3"
    assert requests(line) == 8


def test_plain_lines_and_empty_ones():
    assert requests("GET_blob=4 GET_manifest=2") == 6
    assert requests("") == 0
    assert requests(None) == 0


def test_source_and_destination_add_up():
    src, dst = "GET_blob=8 GET_manifest=1", "HEAD_blob=8 PATCH_blob-upload=2 POST_blob-upload=2 PUT_blob-upload=2 PUT_manifest=1"
    assert requests(src) + requests(dst) == 24
