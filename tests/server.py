"""Start the real app (python app.py) in a subprocess on a free local port, for client and browser tests: the
launcher the page benchmark uses (explorer/bench_page.py), so tests and benchmark start the page alike."""

from explorer.bench_page import ROOT, app_server  # noqa: F401  (re-exported for the tests)
