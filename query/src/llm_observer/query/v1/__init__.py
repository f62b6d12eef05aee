"""The gRPC API's generated modules (``llm_observer_query_v1_pb2``, ``llm_observer_query_v1_pb2_grpc``).

Generated from ``llm_observer/query/proto/llm_observer_query_v1.proto`` by ``query/scripts/generate_protos.py``;
do not edit them by hand.
"""
