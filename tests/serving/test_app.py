"""The HTTP API, served by uvicorn on a loopback port: predictions as the ONNX runtime and predict give them, the
metadata, health and readiness, Prometheus metrics, concurrency, every refused input, the API key."""

import asyncio
import json

import httpx
import numpy as np
import pytest

from genre_lab.serve import served_export, served_run
from genre_lab.serving.app import ServedModel, ServeLimits, create_app
from genre_lab.serving.manifest import Manifest
from genre_lab.serving.onnx_runtime import OnnxGenreModel
from tests.conftest import compose_cfg
from tests.serving.conftest import running

pytest.importorskip("onnxruntime")

LONG = "A detective and a ghost share a night shift in an old hospital. " * 20  # over the tiny run's 128 tokens
MOVIES = [{"synopsis": "A family of robots looks for a home on a cold planet.", "movie_name": "Tin Hearts"},
          {"synopsis": LONG, "movie_name": "Night Shift"},
          {"synopsis": "Two rivals fall in love over one summer.", "movie_name": None}]
LIMITS = ServeLimits(max_batch=16, max_wait_ms=20, max_rows=8, max_body_bytes=20_000)


def serve_cfg(tmp_path, *overrides):
    return compose_cfg("serve", list(overrides), tmp_path)


@pytest.fixture(scope="module")
def exported(onnx_folder, tmp_path_factory):
    return served_export(onnx_folder, serve_cfg(tmp_path_factory.mktemp("serve"), f"run_dir={onnx_folder}"))


@pytest.fixture(scope="module")
def url(exported):
    with running(create_app(exported, LIMITS)) as base:
        yield base


def error_of(response, status, field):
    """The API's one error shape, with no traceback in it."""
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["status"] == status and body["field"] == field and body["message"]
    assert "Traceback" not in response.text
    return body["message"]


def test_movies_get_the_runtimes_genres_and_probabilities_and_the_models_identity(url, onnx_folder):
    response = httpx.post(f"{url}/v1/predict", json={"movies": MOVIES})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = OnnxGenreModel(onnx_folder).predict(MOVIES)
    genres = Manifest.read(onnx_folder).genres
    assert [p["genres"] for p in body["predictions"]] == expected.genres
    served = np.array([[p["probabilities"][g] for g in genres] for p in body["predictions"]])
    np.testing.assert_allclose(served, expected.probabilities, atol=1e-6)
    assert [p["cut"] for p in body["predictions"]] == [False, True, False]
    assert body["model"]["sha256"] == Manifest.read(onnx_folder).model["sha256"]


def test_raw_texts_are_predicted_as_given(url, onnx_folder):
    texts = ["A haunted ship drifts into port. Ghost Tide", "Two chefs compete for one restaurant."]
    body = httpx.post(f"{url}/v1/predict", json={"texts": texts}).json()
    expected = OnnxGenreModel(onnx_folder).predict(texts=texts)
    assert [p["genres"] for p in body["predictions"]] == expected.genres


def test_metadata_says_how_the_model_decides_and_how_it_was_trained(url, onnx_folder):
    meta = httpx.get(f"{url}/v1/metadata").json()
    manifest = Manifest.read(onnx_folder)
    assert meta["genres"] == manifest.genres and meta["text_columns"] == ["synopsis", "movie_name"]
    assert meta["text_template"] == manifest.text_template and meta["decision_rule"] == manifest.decision_rule
    assert meta["model"]["sha256"] == manifest.model["sha256"] and meta["max_length"] == manifest.max_length
    assert "val/f1_micro" in meta["training"] and 0 <= meta["training"]["val/f1_micro"] <= 1
    assert meta["server"]["max_rows"] == LIMITS.max_rows and "api_key" not in meta["server"]


def test_health_readiness_and_docs_answer(url):
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/ready").json()["ready"] is True
    assert "swagger" in httpx.get(f"{url}/docs").text.lower()
    assert "/v1/predict" in httpx.get(f"{url}/openapi.json").json()["paths"]


def test_prometheus_metrics_count_requests_errors_latency_and_batch_sizes(url):
    httpx.post(f"{url}/v1/predict", json={"texts": ["one", "two"]})
    httpx.post(f"{url}/v1/predict", json={"texts": []})
    text = httpx.get(f"{url}/metrics").text
    assert 'genre_lab_requests_total{path="/v1/predict",status="200"}' in text
    assert 'genre_lab_errors_total{path="/v1/predict",status="422"}' in text
    assert 'genre_lab_request_seconds_bucket{le="0.05",path="/v1/predict"}' in text
    assert "genre_lab_batch_rows_bucket" in text and "genre_lab_predicted_rows_total" in text


def test_fifty_concurrent_requests_are_batched_and_each_gets_its_own_answer(exported, onnx_folder):
    texts = [f"Movie {i}: " + "a robot learns to dance " * (i % 7 + 1) for i in range(50)]
    expected = OnnxGenreModel(onnx_folder).predict(texts=texts).probabilities

    async def fire(base):
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/predict", json={"texts": [t]}) for t in texts))

    app = create_app(exported, ServeLimits(max_batch=32, max_wait_ms=50))
    with running(app) as base:
        answers = asyncio.run(fire(base))
        metrics = httpx.get(f"{base}/metrics").text
    genres = exported.genres
    served = np.array([[r.json()["predictions"][0]["probabilities"][g] for g in genres] for r in answers])
    np.testing.assert_allclose(served, expected, atol=1e-5)
    count = next(line for line in metrics.splitlines() if line.startswith("genre_lab_batch_rows_count"))
    calls = float(count.split()[-1])
    assert calls < 50 - 1  # the warm-up call, then fewer calls than requests: they shared batches


BAD = [  # (body bytes, status, field)
    (b'{"movies": [', 400, None),
    (b'[{"synopsis": "x", "movie_name": "y"}]', 422, None),
    (b'{"texts": [1, 2]}', 422, "texts[0]"),
    (b'{"texts": "one text"}', 422, "texts"),
    (b'{"movies": [{"synopsis": "x"}]}', 422, "movies[0].movie_name"),
    (b'{"movies": [{"synopsis": 3, "movie_name": "y"}]}', 422, "movies[0].synopsis"),
    (b'{"movies": [{"synopsis": "", "movie_name": "y"}]}', 422, "movies[0].synopsis"),
    (b'{"movies": []}', 422, "movies"),
    (b'{"texts": []}', 422, "texts"),
    (b'{"texts": ["a\\u0000b"]}', 422, "texts[0]"),
    (b'{"movies": [{"synopsis": "a\\u0000", "movie_name": "y"}]}', 422, "movies[0].synopsis"),
    (b'{"texts": ["a"], "movies": [{"synopsis": "x", "movie_name": "y"}]}', 422, None),
    (b'{}', 422, None),
    (b'{"texts": ["a"], "threshold": 0.2}', 422, "threshold"),
    (json.dumps({"texts": ["a"] * 9}).encode(), 413, "texts"),
    (json.dumps({"texts": ["a" * 30_000]}).encode(), 413, None),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD, ids=[f"{s}-{f}-{i}" for i, (_, s, f) in enumerate(BAD)])
def test_bad_input_gets_one_json_error_naming_the_field(url, body, status, field):
    response = httpx.post(f"{url}/v1/predict", content=body, headers={"content-type": "application/json"})
    error_of(response, status, field)


def test_a_chunked_body_over_the_limit_is_refused_while_it_arrives(url):
    def chunks():
        for _ in range(30):
            yield b" " * 1000  # JSON whitespace: 30 kB in all, over the 20 kB limit, with no Content-Length
        yield b'{"texts": ["a"]}'

    response = httpx.post(f"{url}/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "max_body_bytes" in error_of(response, 413, None)


def test_unknown_paths_and_methods_get_json_errors(url):
    error_of(httpx.get(f"{url}/v2/predict"), 404, None)
    error_of(httpx.get(f"{url}/v1/predict"), 405, None)


def test_the_api_key_guards_the_model_but_not_health(exported):
    with running(create_app(exported, ServeLimits(api_key="s3cret"))) as base:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                        {"Authorization": "Basic s3cret"}):
            response = httpx.post(f"{base}/v1/predict", json={"texts": ["a"]}, headers=headers)
            error_of(response, 401, "Authorization")
            assert response.headers["www-authenticate"] == "Bearer"
        error_of(httpx.get(f"{base}/v1/metadata"), 401, "Authorization")
        error_of(httpx.get(f"{base}/metrics"), 401, "Authorization")
        good = {"Authorization": "Bearer s3cret"}
        assert httpx.post(f"{base}/v1/predict", json={"texts": ["a"]}, headers=good).status_code == 200
        assert httpx.get(f"{base}/metrics", headers=good).status_code == 200
        assert httpx.get(f"{base}/health").status_code == 200


def test_a_failing_model_gives_a_json_500_and_the_server_goes_on(exported):
    def compute(texts):
        if "boom" in texts:
            raise RuntimeError("kaboom at the model")
        return exported.compute(texts)

    model = ServedModel(exported.genres, exported.text_template, compute, exported.identity)
    with running(create_app(model, ServeLimits(max_wait_ms=0))) as base:
        response = httpx.post(f"{base}/v1/predict", json={"texts": ["boom"]})
        assert "RuntimeError" in error_of(response, 500, None) and "kaboom" not in response.text
        assert httpx.post(f"{base}/v1/predict", json={"texts": ["fine"]}).status_code == 200


def test_a_trained_run_is_served_with_predicts_probabilities(trained_run, tmp_path):
    from genre_lab.runs.finished import locate

    model = served_run(serve_cfg(tmp_path, f"run_dir={trained_run}", "precision=32-true"))
    run = locate(trained_run)
    expected, cut = run.probabilities_and_cuts([m["synopsis"] + " " + (m["movie_name"] or "") for m in MOVIES],
                                              precision="32-true")
    with running(create_app(model, LIMITS)) as base:
        body = httpx.post(f"{base}/v1/predict", json={"movies": MOVIES}).json()
        meta = httpx.get(f"{base}/v1/metadata").json()
    served = np.array([[p["probabilities"][g] for g in run.label_space.names] for p in body["predictions"]])
    np.testing.assert_allclose(served, expected, atol=1e-6)
    assert [p["cut"] for p in body["predictions"]] == cut.tolist()
    assert meta["model"]["file"] == "best.ckpt" and meta["training"]["val/f1_micro"] >= 0
