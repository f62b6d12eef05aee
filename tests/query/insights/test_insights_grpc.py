"""The insight RPCs of the gRPC query API answer what the REST routes answer, on the same running service
(real chDB store, auth on): forecast, advice and prompt versions agree field for field, tenancy and bad
requests map to status codes."""

from __future__ import annotations

import time
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import json_format

from llm_observer.query.formats import rfc3339
from llm_observer.query.v1 import llm_observer_query_v1_pb2 as pb
from llm_observer.query.v1 import llm_observer_query_v1_pb2_grpc as pb_grpc
from tests.query.conftest import KEY_A, KEY_A_WEB, KEY_B, Running


def metadata(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def as_document(message: Any) -> dict[str, Any]:
    """A response message as the REST document it mirrors (64-bit integers as numbers, unset fields None)."""
    document: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _numbers(document, message.DESCRIPTOR)


def _numbers(value: Any, descriptor: Any) -> Any:
    if not isinstance(value, dict):
        return value
    out = {}
    for field in descriptor.fields:
        if field.name not in value:
            out[field.name] = None
            continue
        item = value[field.name]
        if (
            field.message_type is not None
            and field.message_type.name not in ("Struct",)
            and not _is_map(field)
        ):
            if isinstance(item, list):
                item = [_numbers(v, field.message_type) for v in item]
            else:
                item = _numbers(item, field.message_type)
        elif field.type in (field.TYPE_INT64, field.TYPE_UINT64):
            item = [int(v) for v in item] if isinstance(item, list) else int(item)
        out[field.name] = item
    return out


def _is_map(field: Any) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nones(v) for v in value]
    return value


async def test_insights_grpc_forecast_and_advice_equal_rest(running: Running) -> None:
    as_of = time.time_ns() // 1000 * 1000
    rest = await running.http.get(
        "/api/v1/insights/forecast",
        params={"group_by": "model", "budget_usd": "5", "as_of": rfc3339(as_of)},
        headers=running.headers(KEY_A),
    )
    assert rest.status_code == 200, rest.text
    assert len(rest.json()["forecasts"]) >= 2, "one per model of org-a"
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        answer = await stub.ForecastSpend(
            pb.ForecastSpendRequest(group_by=["model"], budget_usd=5, as_of_unix_nano=as_of),
            metadata=metadata(KEY_A),
        )
        assert _without_nones(as_document(answer)) == _without_nones(rest.json())

        end = time.time_ns() // 1000 * 1000
        start = end - 6 * 3600 * 10**9
        window = {"start_time": rfc3339(start), "end_time": rfc3339(end)}
        rest_advice = await running.http.get(
            "/api/v1/insights/advice", params={"near": "false", **window}, headers=running.headers(KEY_A)
        )
        assert rest_advice.status_code == 200, rest_advice.text
        assert rest_advice.json()["items"], "the planted calls repeat prompts"
        advice = await stub.GetCostAdvice(
            pb.CostAdviceRequest(
                skip_near_duplicates=True, start_time_unix_nano=start, end_time_unix_nano=end
            ),
            metadata=metadata(KEY_A),
        )
        assert _without_nones(as_document(advice)) == _without_nones(rest_advice.json())

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetCostAdvice(pb.CostAdviceRequest(kinds=["nonsense"]), metadata=metadata(KEY_A))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await stub.ForecastSpend(
                pb.ForecastSpendRequest(organization_id="org-a"), metadata=metadata(KEY_B)
            )
        assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_insights_grpc_prompt_versions_equal_rest_and_stay_in_the_tenant(running: Running) -> None:
    rest = await running.http.get("/api/v1/insights/prompt-versions", headers=running.headers(KEY_A_WEB))
    assert rest.status_code == 200, rest.text
    body = rest.json()
    assert body["versions"], "the planted calls have prompt versions"
    async with grpc.aio.insecure_channel(running.grpc_target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        answer = await stub.ListPromptVersions(pb.PromptVersionsRequest(), metadata=metadata(KEY_A_WEB))
        # The window's end defaults to now: compare what does not move with it.
        got, want = _without_nones(as_document(answer)), _without_nones(body)
        assert got["versions"] == want["versions"]
        assert (got["total_calls"], got["unidentified_calls"]) == (
            want["total_calls"],
            want["unidentified_calls"],
        )

        only = body["versions"][0]["id"]
        compared = await stub.ComparePromptVersions(
            pb.ComparePromptVersionsRequest(a=only, b=only), metadata=metadata(KEY_A_WEB)
        )
        assert compared.a.id == compared.b.id == only
        assert compared.delta.calls == 0 and compared.delta.error_rate == 0

        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.ComparePromptVersions(
                pb.ComparePromptVersionsRequest(a=only, b="nope@1"), metadata=metadata(KEY_A_WEB)
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        # Another organization's key sees none of org-a's versions.
        theirs = await stub.ListPromptVersions(pb.PromptVersionsRequest(), metadata=metadata(KEY_B))
        assert only not in {v.id for v in theirs.versions}
