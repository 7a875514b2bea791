"""The WSGI environ (PEP 3333): CGI variables, SCRIPT_NAME/PATH_INFO split at
the alias, HTTP_* headers, the wsgi.* keys true to the MPM, pyinterp.* keys;
PyInterpPassAuthorization, PyInterpPythonPath, PyInterpPythonHome."""
import pytest

import harness
from conftest import start_shared_server

EXTRA = """
PyInterpScriptAlias /env "{environ}"
PyInterpScriptAlias /auth-on "{environ}" application-group=auth
PyInterpScriptAlias /deep/er/path "{environ}"
PyInterpScriptAlias /global "{environ}" application-group=%{{GLOBAL}}
<Location /auth-on>
    PyInterpPassAuthorization On
</Location>
""".format(environ=harness.app("environ"))


@pytest.fixture(scope="module")
def server(request, module_python):
    # PyInterpPythonHome: the prefix of the Python the module embeds (the
    # harness sets it already for a relocated Python).
    extra = EXTRA
    if not harness.python_relocated(module_python[2], module_python[0]):
        extra += 'PyInterpPythonHome "%s"\n' % module_python[2]
    server = start_shared_server(request, "environ", extra=extra, threads=4)
    server.expected_prefix = str(module_python[2])
    return server


def dump(server, path, headers=None, method="GET", body=None):
    r = server.request(method, path, headers, body)
    assert r.status == 200, r
    return r.json()


def test_cgi_variables(server):
    d = dump(server, "/env/some/path?a=1&b=%20x", {"User-Agent": "pyinterp-test"})
    env = d["environ"]
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == "/env"
    assert env["PATH_INFO"] == "/some/path"
    assert env["QUERY_STRING"] == "a=1&b=%20x"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_NAME"]
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_USER_AGENT"] == "pyinterp-test"
    assert env["HTTP_HOST"] == "localhost"
    assert env["REQUEST_URI"] == "/env/some/path?a=1&b=%20x"
    assert "CONTENT_LENGTH" not in env or env["CONTENT_LENGTH"] in ("", "0")


def test_native_strings(server):
    """Every CGI/HTTP key is a native str; the wsgi.* keys have their PEP 3333 types."""
    d = dump(server, "/env/x", {"X-Custom": "caf\xe9"})
    types = d["types"]
    for key, t in types.items():
        if not key.startswith(("wsgi.", "pyinterp.")):
            assert t == "str", (key, t)
    assert d["environ"]["HTTP_X_CUSTOM"] == "caf\xe9"  # latin-1 decoded
    assert types["wsgi.version"] == "tuple" and d["environ"]["wsgi.version"] == [1, 0]
    assert d["environ"]["wsgi.url_scheme"] == "http"
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert types[key] == "bool", key
    assert d["environ"]["wsgi.run_once"] is False
    assert set(d["input_methods"]) == {"read", "readline", "readlines", "__iter__"}
    assert set(d["errors_methods"]) == {"write", "writelines", "flush"}
    assert d["file_wrapper_callable"] is True


def test_mpm_flags_event_one_process(server):
    env = dump(server, "/env")["environ"]
    assert env["wsgi.multithread"] is True  # event MPM, 4 threads
    assert env["wsgi.multiprocess"] is False  # ServerLimit 1


def test_post_content_headers(server):
    body = b"a=1&b=2"
    d = dump(server, "/env/form", {"Content-Type": "application/x-www-form-urlencoded"}, "POST", body)
    env = d["environ"]
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == str(len(body))
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


@pytest.mark.parametrize("path,script_name,path_info", [
    ("/env", "/env", ""),
    ("/env/", "/env", "/"),
    ("/env/a/b/", "/env", "/a/b/"),
    ("/env/a%20b/c", "/env", "/a b/c"),
    ("/deep/er/path/x", "/deep/er/path", "/x"),
])
def test_script_name_path_info_split(server, path, script_name, path_info):
    env = dump(server, path)["environ"]
    assert env["SCRIPT_NAME"] == script_name
    assert env["PATH_INFO"] == path_info


def test_path_info_is_decoded(server):
    env = dump(server, "/env/a%20b/caf%C3%A9")["environ"]
    assert env["PATH_INFO"] == "/a b/caf\xc3\xa9"  # bytes as latin-1 (PEP 3333)


def test_no_alias_match_is_not_ours(server, log_allow):
    log_allow(r"AH01630: client denied by server configuration")
    r = server.get("/environment")  # a prefix of nothing: /env must match whole segments
    assert r.status in (403, 404)
    r = server.get("/en")
    assert r.status in (403, 404)


def test_pyinterp_keys(server):
    d = dump(server, "/env/k")
    env = d["environ"]
    assert env["pyinterp.interpreter_id"] == d["identity"]["interp"]
    assert env["pyinterp.interpreter_id"] != 0  # %{RESOURCE} is a subinterpreter
    assert isinstance(env["pyinterp.application_group"], str) and env["pyinterp.application_group"]
    assert "/env" in env["pyinterp.application_group"]  # %{RESOURCE}: host + script


def test_authorization_not_passed_by_default(server):
    env = dump(server, "/env", {"Authorization": "Basic dXNlcjpwYXNz"})["environ"]
    assert "HTTP_AUTHORIZATION" not in env


def test_authorization_passed_when_on(server):
    env = dump(server, "/auth-on", {"Authorization": "Basic dXNlcjpwYXNz"})["environ"]
    assert env["HTTP_AUTHORIZATION"] == "Basic dXNlcjpwYXNz"


def test_python_path_in_front_of_sys_path(server):
    d = dump(server, "/env")
    assert str(harness.PYLIB) in d["sys_path"]
    # Every interpreter gets it: another subinterpreter and the main one.
    for path in ("/auth-on", "/global"):
        assert str(harness.PYLIB) in dump(server, path)["sys_path"]


def test_python_home(server):
    assert dump(server, "/env")["sys_prefix"] == server.expected_prefix
