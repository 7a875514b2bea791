# Imports single_phase_ext (tests/unit/fixtures/single_phase_ext.c) when it loads, then says
# where it runs.
import apptest
import single_phase_ext  # noqa: F401


def application(environ, start_response):
    info = apptest.identity(environ)
    info["placement"] = environ.get("pyinterp.placement")
    return apptest.json_response(start_response, info)
