"""ZeroGPU wiring. The real ZeroGPU scheduler exists only inside a Hugging Face Space, so the decorator is
checked here against a stand-in `spaces` module that records what it was asked for: that the page's model
work is wrapped on a ZeroGPU Space, with a duration sized to the request, and left alone everywhere else."""

import importlib
import sys
import types

from explorer.serve import zerogpu
from explorer.core.settings import check_settings


def fake_spaces(calls):
    module = types.ModuleType("spaces")

    def GPU(duration=60):  # noqa: N802  (the real package's name)
        def wrap(fn):
            def run(*args, **kwargs):
                calls.append(duration(*args, **kwargs) if callable(duration) else duration)
                return fn(*args, **kwargs)
            return run
        return wrap

    module.GPU = GPU
    return module


def test_nothing_changes_outside_a_zerogpu_space(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces([]))
    function = lambda: 1  # noqa: E731
    assert zerogpu.on_gpu(60)(function) is function


def test_the_page_model_work_runs_inside_spaces_gpu_with_a_sized_duration(monkeypatch):
    calls = []
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces(calls))
    from explorer.page import service

    reloaded = importlib.reload(service)  # the decorators are applied when the module is imported
    try:
        small = check_settings(methods=["clse", "fastv"])
        large = check_settings(methods=["clse", "fastv"], repeats=5)
        request = types.SimpleNamespace(settings=small, images=[None], model_id="shapes-llava")
        assert zerogpu.request_seconds(small) < zerogpu.request_seconds(large) <= zerogpu.MAX_SECONDS
        assert zerogpu.request_seconds(small, frames=16) > zerogpu.request_seconds(small, frames=1)
        monkeypatch.setattr(reloaded, "get_model", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("ran")))
        try:
            reloaded.answer(request)
        except RuntimeError as error:
            assert str(error) == "ran"
        assert calls == [zerogpu.request_seconds(small, 1)]
    finally:
        monkeypatch.delenv("SPACES_ZERO_GPU")
        importlib.reload(service)
