"""Generated protobuf and gRPC code of the relay.v1 API, shared by the edge and the teacher.

Regenerate with `python scripts/generate_protos.py`; a test fails when this drifts from
`protos/`. Import the modules from here:

    from relay_proto import relay_pb2, relay_pb2_grpc
"""

from relay_proto.relay.v1 import relay_pb2, relay_pb2_grpc

__all__ = ["relay_pb2", "relay_pb2_grpc"]
