"""`genre-lab serve` as a user runs it: a real process on a loopback port that answers, serves an exported folder
without torch, finishes a request in flight on SIGTERM and exits 0; bad settings and a busy port exit 2."""

import logging
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from genre_lab.benchmark.http_load import ServerProcess
from genre_lab.serve import API_KEY_ENV, limits_of, warn_if_open
from genre_lab.serving.manifest import Manifest
from tests.conftest import compose_cfg, genre_lab_here

pytest.importorskip("uvicorn")
pytest.importorskip("onnxruntime")
@pytest.mark.process
def test_sigterm_finishes_the_request_in_flight_then_exits_zero_and_no_torch_was_loaded(onnx_folder, tmp_path):
    # max_wait_ms=3000: the request sits in the batcher, in flight, when SIGTERM arrives
    server = ServerProcess([f"run_dir={onnx_folder}", "max_wait_ms=3000"], tmp_path / "serve.log", threads=1)
    url, process = server.url, server.process
    try:
        assert httpx.get(f"{url}/ready", timeout=10).json()["ready"] is True
        maps = Path(f"/proc/{process.pid}/maps")
        if maps.exists():  # the exported folder is served by onnxruntime: torch's library is never mapped
            assert "libtorch" not in maps.read_text()
        answer = {}
        request = threading.Thread(target=lambda: answer.update(response=httpx.post(
            f"{url}/v1/predict", json={"texts": ["A ghost haunts a ship."]}, timeout=60)))
        request.start()
        time.sleep(1.0)
        assert server.stop() == 0, (tmp_path / "serve.log").read_text()  # SIGTERM, then its exit code
        request.join(60)
    finally:
        if process.poll() is None:
            process.kill()
    response = answer["response"]
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1
    assert response.json()["model"]["sha256"] == Manifest.read(onnx_folder).model["sha256"]
    assert "stopped on SIGTERM" in (tmp_path / "serve.log").read_text()


@pytest.mark.parametrize(("setting", "message"), [
    ("port=70000", "port=70000 must be a whole number in [0, 65535]"),
    ("max_batch=0", "max_batch=0 must be a whole number ≥ 1"),
    ("max_rows=-5", "max_rows=-5 must be a whole number ≥ 1"),
    ("max_wait_ms=-1", "max_wait_ms=-1 must be a number between 0 and 10000"),
    ("api_key=' '", "api_key is blank"),
])
def test_bad_settings_exit_2_with_the_setting_named(trained_run, tmp_path, setting, message):
    done = genre_lab_here("serve", f"run_dir={trained_run}", setting, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_missing_run_exits_2(tmp_path):
    done = genre_lab_here("serve", f"run_dir={tmp_path / 'nope'}", cwd=tmp_path)
    assert done.returncode == 2 and "no such directory" in done.stderr


def test_a_port_in_use_exits_2_saying_the_server_did_not_start(onnx_folder, tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = genre_lab_here("serve", f"run_dir={onnx_folder}", f"port={port}", cwd=tmp_path)
    assert done.returncode == 2 and f"did not start on 127.0.0.1:{port}" in done.stderr, done.stderr
    assert signal.getsignal(signal.SIGTERM) is before  # serve put back the handler it replaced


def test_the_api_key_comes_from_the_setting_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert limits_of(compose_cfg("serve", [], tmp_path)).api_key is None
    assert limits_of(compose_cfg("serve", ["api_key=abc"], tmp_path)).api_key == "abc"
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert limits_of(compose_cfg("serve", [], tmp_path)).api_key == "from-env"


def test_binding_every_interface_without_a_key_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING):
        assert warn_if_open("0.0.0.0", None) and "every network interface" in caplog.text
    assert not warn_if_open("0.0.0.0", "key") and not warn_if_open("127.0.0.1", None)
