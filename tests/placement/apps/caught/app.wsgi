# Tries single_phase_ext and does without it, as markupsafe does without its
# _speedups: it may keep its own GIL.
import apptest

try:
    import single_phase_ext
except ImportError:
    single_phase_ext = None


def application(environ, start_response):
    info = apptest.identity(environ)
    info["placement"] = environ.get("pyinterp.placement")
    info["with_extension"] = single_phase_ext is not None
    return apptest.json_response(start_response, info)
