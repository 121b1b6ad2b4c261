import asyncio
import json
import urllib.request

import pytest

from turngym.envs.search_qa.client import SearchClient, SearchRequestError, SearchServiceUnavailable
from turngym.envs.search_qa.env import SearchQAEnv
from turngym.envs.search_qa.server import MAX_QUERIES, InsecureBind, check_bind, create_app
from turngym.envs.types import StopReason


@pytest.fixture
def server(fictional, serve_app):
    return serve_app(create_app(fictional.retriever, fictional.key, len(fictional.corpus)))


def _queries(data, n=12):
    return [h.query for q in data.questions[:n] for h in q.hops]


def test_client_returns_what_the_local_retriever_returns(fictional, server):
    client = SearchClient(server.url, expect_key=fictional.key)
    queries = _queries(fictional)
    assert client.search(queries, 3) == fictional.retriever.search(queries, 3)
    assert asyncio.run(_asearch(client, queries)) == fictional.retriever.search(queries, 3)


async def _asearch(client, queries):
    try:
        return await client.asearch(queries, 3)
    finally:
        await client.aclose()


def test_concurrent_requests_are_each_answered_with_their_own_results(fictional, server):
    client = SearchClient(server.url)
    queries = _queries(fictional, 30)

    async def run():
        try:
            return await asyncio.gather(*(client.asearch([q], 2) for q in queries))
        finally:
            await client.aclose()

    got = asyncio.run(run())
    assert [g[0] for g in got] == fictional.retriever.search(queries, 2)


def test_client_refuses_a_server_with_another_dataset(server):
    with pytest.raises(SearchRequestError, match="serves dataset"):
        SearchClient(server.url, expect_key="factbook-other").search(["x"], 1)


def _post(url, body: bytes, headers=None):
    req = urllib.request.Request(url + "/search", data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize(
    "body, status, kind",
    [
        (b"not json", 400, "bad_request"),
        (b'{"queries": "capital"}', 400, "bad_request"),
        (b'{"queries": ["a"], "k": 0}', 400, "bad_request"),
        (json.dumps({"queries": ["a"] * (MAX_QUERIES + 1)}).encode(), 413, "too_large"),
        (json.dumps({"queries": ["a" * (1 << 20)]}).encode(), 413, "too_large"),
    ],
)
def test_bad_requests_get_typed_json_errors(server, body, status, kind):
    code, payload = _post(server.url, body)
    assert code == status and payload["error"]["type"] == kind and payload["error"]["message"]


def test_token_is_required_when_configured(fictional, serve_app):
    server = serve_app(create_app(fictional.retriever, fictional.key, len(fictional.corpus), token="s3cret"))
    code, payload = _post(server.url, b'{"queries": ["a"]}')
    assert code == 401 and payload["error"]["type"] == "unauthorized"
    with pytest.raises(SearchRequestError, match="unauthorized"):
        SearchClient(server.url, token="wrong").search(["a"], 1)
    assert len(SearchClient(server.url, token="s3cret").search(["capital"], 1)) == 1


def test_binding_off_localhost_needs_a_token():
    with pytest.raises(InsecureBind, match="--token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "tok")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)


def test_dead_service_raises_a_typed_error_after_retries():
    client = SearchClient("http://127.0.0.1:9", retries=2, backoff=0.01, timeout=1)
    with pytest.raises(SearchServiceUnavailable, match="after 3 attempts"):
        client.search(["x"], 1)


def test_env_with_a_dead_service_ends_as_env_error_not_an_exception():
    env = SearchQAEnv(source="fictional", split=None, retriever_url="http://127.0.0.1:9")
    env.retriever.retries, env.retriever.backoff = 1, 0.01
    env.reset(seed=0)
    obs, _, _, truncated, info = env.step("<search>anything</search>")
    assert truncated and info["turn"].stop_reason == StopReason.ENV_ERROR and "search service failed" in obs
    assert "SearchServiceUnavailable" in info["error"]


def test_env_uses_a_live_service_sync_and_async(fictional, server):
    env = SearchQAEnv(source="fictional", split=None, retriever_url=server.url)
    local = SearchQAEnv(source="fictional", split=None)
    for e in (env, local):
        e.reset(seed=2)
    query = f"<search>{local.question.hops[0].query}</search>"
    assert env.step(query)[0] == local.step(query)[0]

    async def run():
        env.reset(seed=2)
        try:
            return (await env.astep(query))[0]
        finally:
            await env.retriever.aclose()

    local.reset(seed=2)
    assert asyncio.run(run()) == local.step(query)[0]
