"""Reads the `google.rpc.Status` details a teacher may attach to an error
(`grpc-status-details-bin`): today the retry delay of a RESOURCE_EXHAUSTED answer.

    delay_s = retry_delay_s(rpc_error)    # seconds from a google.rpc.RetryInfo, or None
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def retry_delay_s(error: grpc.RpcError) -> float | None:
    """The delay the teacher asked the caller to wait before retrying, if it named one."""
    if not isinstance(error, grpc.Call):
        return None
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        # The details disagree with the call's own code or message: not to be trusted.
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return max(0.0, info.retry_delay.ToTimedelta().total_seconds())
    return None
