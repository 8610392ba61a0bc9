"""ZeroGPU as its maintainers document it, through a faithful stand-in for `spaces`: the decorated function runs
in a forked process, its arguments and its result cross by pickle, the parent process never initialises CUDA,
and a model loaded inside a call fails it. The real ZeroGPU scheduler exists only inside a Hugging Face Space."""

import importlib
import multiprocessing
import pickle
import sys
import threading
import types

import pytest
import torch

from explorer.core.settings import check_settings
from explorer.serve import access, zerogpu
from tests.conftest import random_image


def no_tensors(value):
    """Whether a result holds no torch tensor (a CUDA tensor in a result hangs the call on ZeroGPU)."""
    if isinstance(value, torch.Tensor):
        return False
    if isinstance(value, dict):
        return all(no_tensors(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(no_tensors(v) for v in value)
    return True


def forking_spaces(durations):
    """A `spaces` module whose GPU decorator does to a call what ZeroGPU does: a forked worker, pickled
    arguments and results; loading a model inside the call fails it."""
    module = types.ModuleType("spaces")

    def GPU(duration=60):  # noqa: N802  (the real package's name)
        def wrap(fn):
            def call(*args, **kwargs):
                durations.append(duration(*args, **kwargs) if callable(duration) else duration)
                arguments = pickle.dumps((args, kwargs))  # an unpicklable argument fails here
                context = multiprocessing.get_context("fork")
                receiver, sender = context.Pipe(duplex=False)

                def worker():
                    import models  # noqa: PLC0415

                    def forbidden(*a, **k):
                        raise AssertionError("a model was loaded inside a GPU call")

                    models.load = forbidden
                    try:
                        a, k = pickle.loads(arguments)
                        sender.send(("ok", pickle.dumps(fn(*a, **k))))
                    except BaseException as error:  # noqa: BLE001  (reported to the parent)
                        sender.send(("error", f"{type(error).__name__}: {error}"))

                process = context.Process(target=worker)
                process.start()
                status, data = receiver.recv()
                process.join(timeout=60)
                assert not torch.cuda.is_initialized()  # the web process never has a CUDA context
                if status == "error":
                    raise RuntimeError(data)
                result = pickle.loads(data)
                assert no_tensors(result), "a tensor in a GPU call's result"
                return result
            return call
        return wrap

    module.GPU = GPU
    return module


@pytest.fixture
def on_zerogpu(monkeypatch, page_model):
    """The page's service as a ZeroGPU Space runs it, with the tiny page model preloaded (on the CPU here)."""
    durations = []
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setenv("EXPLORER_DEVICE", "cpu")
    monkeypatch.setenv("EXPLORER_MODEL", page_model)
    monkeypatch.setitem(sys.modules, "spaces", forking_spaces(durations))
    from explorer.page import service

    importlib.reload(zerogpu)
    reloaded = importlib.reload(service)  # the decorators are applied when the module is imported
    access.unload_all()
    access.preload()
    yield reloaded, durations
    access.unload_all()
    monkeypatch.delenv("SPACES_ZERO_GPU")
    monkeypatch.delitem(sys.modules, "spaces")
    importlib.reload(zerogpu)
    importlib.reload(service)


def test_the_page_runs_its_model_work_in_forked_gpu_calls(on_zerogpu, page_model, tmp_path):
    service, durations = on_zerogpu
    path = tmp_path / "image.png"
    random_image(40).save(path)
    request = service.prepare(dict(image=str(path), question="what color is the circle ?", keep=9, model_id=page_model,
                                   follow_ups="what color is the square ?"))
    payload = service.run_answer(request)  # a GPU worker: the preloaded model, nothing loaded there
    assert set(payload["results"]) == {"none", "clse", "fastv"}
    assert payload["model"] == payload["results"]["clse"]["model"] == access.display_name(page_model)
    assert page_model not in str(payload)  # the server's path never reaches a result
    result, analysis, view = service.run_diagnose(request, payload)
    assert result["flip_test"] and len(view) == 1 and analysis.flip and "flip_test" not in payload
    assert durations == [zerogpu.request_seconds(request.settings, 1)] * 2
    assert access.loaded_models() == [access.canonical_model(page_model)]


def test_the_stand_in_fails_what_zerogpu_would_fail(on_zerogpu, tmp_path):
    service, _ = on_zerogpu
    path = tmp_path / "image.png"
    random_image(41).save(path)
    request = service.prepare(dict(image=str(path), question="what color is the circle ?", keep=9,
                                   model_id="shapes-llava"))  # offered, but not the deployment's preloaded default
    with pytest.raises(RuntimeError, match="only the models loaded at its start"):
        service.run_answer(request)  # the embedded model was not preloaded: refused, never loaded in the call
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        service.gpu_answer(request, threading.Lock())  # a lock (or a progress object) cannot cross
    import models

    loading = zerogpu.gpu(duration=10)(lambda: models.load(None))
    with pytest.raises(RuntimeError, match="a model was loaded inside a GPU call"):
        loading()


def test_the_duration_is_sized_to_the_request():
    small = check_settings(methods=["clse", "fastv"])
    large = check_settings(methods=["clse", "fastv"], repeats=5)
    talk = check_settings(methods=["clse", "fastv"], follow_ups=["a ?", "b ?"])
    assert zerogpu.request_seconds(small) < zerogpu.request_seconds(large) <= zerogpu.MAX_SECONDS
    assert zerogpu.request_seconds(small) < zerogpu.request_seconds(talk)
    assert zerogpu.request_seconds(small, frames=16) > zerogpu.request_seconds(small, frames=1)


def test_off_zerogpu_the_real_spaces_package_leaves_the_function_alone(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    import spaces

    function = lambda: 1  # noqa: E731
    assert spaces.GPU(duration=10)(function) is function and not zerogpu.active()
