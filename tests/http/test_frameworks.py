"""A Flask application and a Django application (Debian's python3-flask and
python3-django) in two application groups of one process: each works, and
neither sees the other."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness
from conftest import start_shared_server

EXTRA = """
PyInterpScriptAlias /flask "{flask}" application-group=flask
PyInterpScriptAlias /django "{django}" application-group=django
""".format(flask=harness.app("flask"), django=harness.app("django"))


@pytest.fixture(scope="module")
def server(request, system_python):
    return start_shared_server(request, "frameworks", extra=EXTRA, threads=3)


def test_flask_works_and_is_alone(server):
    d = server.get_json("/flask/")
    assert d["framework"] == "flask"
    assert d["interp"] == d["import_interp"] != 0
    assert d["group"] == "flask"
    assert d["other_loaded"] is False
    assert d["script_root"] == "/flask"
    assert d["url"] == "http://localhost/flask/"


def test_django_works_and_is_alone(server):
    d = server.get_json("/django/")
    assert d["framework"] == "django"
    assert d["interp"] == d["import_interp"] != 0
    assert d["group"] == "django"
    assert d["other_loaded"] is False
    assert d["script_root"] == "/django"
    assert d["path"] == "/django/" and d["path_info"] == "/"


def test_different_interpreters_one_process(server):
    f, d = server.get_json("/flask/"), server.get_json("/django/")
    assert f["interp"] != d["interp"]


@pytest.mark.parametrize("base", ["/flask", "/django"])
def test_route_parameter(server, base):
    r = server.get(base + "/hello/world")
    assert r.status == 200 and r.body == b"Hello, world!"


@pytest.mark.parametrize("base", ["/flask", "/django"])
def test_form_post(server, base):
    r = server.request("POST", base + "/form", {"Content-Type": "application/x-www-form-urlencoded"},
                       b"a=1&b=two+words")
    assert r.status == 200, r
    assert r.json() == {"a": "1", "b": "two words"}


def test_flask_json_post_and_404(server):
    r = server.request("POST", "/flask/json", {"Content-Type": "application/json"},
                       json.dumps({"x": [1, 2]}).encode())
    assert r.status == 200 and r.json() == {"got": {"x": [1, 2]}}
    assert server.get("/flask/missing").status == 404


def test_both_concurrently(server):
    paths = ["/flask/", "/django/"] * 30

    def one(p):
        return p, server.get_json(p)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, paths))
    ids = {}
    for p, d in results:
        assert d["other_loaded"] is False
        assert d["framework"] in p
        ids.setdefault(p, set()).add(d["interp"])
    assert len(ids["/flask/"]) == 1 and len(ids["/django/"]) == 1
    assert ids["/flask/"] != ids["/django/"]
