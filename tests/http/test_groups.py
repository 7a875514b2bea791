"""Application groups: every request runs in its group's interpreter, every
time, also when a small pool of worker threads serves %{GLOBAL}, named
groups and %{RESOURCE}/%{SERVER}/%{ENV:VAR} groups in turn; threads enter
interpreters through cached thread states; PyInterpCallableObject."""
import collections
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness
import httpclient
from conftest import start_shared_server

IDENT = harness.app("identity")
CALLABLE = harness.app("callable")

EXTRA = """
PyInterpScriptAlias /global "{ident}" application-group=%{{GLOBAL}}
PyInterpScriptAlias /a "{ident}" application-group=alpha
PyInterpScriptAlias /b "{ident}" application-group=beta
PyInterpScriptAlias /a-other-script "{callable}" application-group=alpha

PyInterpScriptAlias /res1 "{ident}"
PyInterpScriptAlias /res2 "{callable}"

PyInterpScriptAlias /srv1 "{ident}" application-group=%{{SERVER}}
PyInterpScriptAlias /srv2 "{callable}" application-group=%{{SERVER}}

SetEnvIf Request_URI "^/envsel/a" PYGROUP=alpha
SetEnvIf Request_URI "^/envsel/b" PYGROUP=beta
PyInterpScriptAlias /envsel "{ident}"
<Location /envsel>
    PyInterpApplicationGroup %{{ENV:PYGROUP}}
</Location>
PyInterpScriptAlias /envset "{ident}"
<Location /envset>
    SetEnv PYGROUP gamma
    PyInterpApplicationGroup %{{ENV:PYGROUP}}
</Location>

PyInterpScriptAlias /dirgroup "{ident}"
<Location /dirgroup>
    PyInterpApplicationGroup beta
</Location>

PyInterpScriptAlias /call-default "{callable}" application-group=calls
PyInterpScriptAlias /call-option "{callable}" application-group=calls callable=other
PyInterpScriptAlias /call-directive "{callable}" application-group=calls
PyInterpScriptAlias /call-both "{callable}" application-group=calls callable=other
<Location /call-directive>
    PyInterpCallableObject third
</Location>
<Location /call-both>
    PyInterpCallableObject third
</Location>
""".format(ident=IDENT, callable=CALLABLE)


@pytest.fixture(scope="module")
def server(request):
    # Two threads: every thread serves every group many times.
    return start_shared_server(request, "groups", extra=EXTRA, threads=2)


def check_identity(d, expect_group):
    """The request ran in the interpreter the module named, which is the one
    the script was imported in, every time."""
    assert d["interp"] == d["interpreter_id"], d            # module's claim == CPython's
    assert d["interp"] == d["import_interp"], d             # import-time interpreter
    assert d["interp"] == d["marker_interp"], d             # this interpreter's sys.modules
    assert d["modules_same"], d
    assert d["local_count"] == d["thread_count"], d         # cached thread state kept
    if expect_group is not None:
        assert d["group"] == expect_group, d


def test_global_is_main_interpreter(server):
    d = server.get_json("/global")
    check_identity(d, "")
    assert d["interp"] == 0


def test_named_groups_are_distinct_subinterpreters(server):
    a, b = server.get_json("/a"), server.get_json("/b")
    check_identity(a, "alpha")
    check_identity(b, "beta")
    assert a["interp"] not in (0, b["interp"])
    assert b["interp"] != 0


def test_alternating_groups_on_two_threads(server):
    """%{GLOBAL}, alpha and beta in turn on a 2-thread child, from 3 client
    threads, many rounds: each request reports the interpreter that served
    it, and it is right every time."""
    paths = ["/global", "/a", "/b"] * 70
    random.Random(4).shuffle(paths)
    groups = {"/global": "", "/a": "alpha", "/b": "beta"}

    def one(path):
        return path, server.get_json(path)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, paths))
    by_group = collections.defaultdict(set)
    thread_groups = collections.defaultdict(set)
    for path, d in results:
        check_identity(d, groups[path])
        by_group[path].add(d["interp"])
        thread_groups[d["thread"]].add(path)
    # One interpreter per group, all different, the main one for %{GLOBAL}.
    assert all(len(ids) == 1 for ids in by_group.values()), by_group
    assert by_group["/global"] == {0}
    assert len({next(iter(ids)) for ids in by_group.values()}) == 3
    # The point of the test: threads were shared between groups.
    assert len(thread_groups) <= 2
    assert any(len(g) == 3 for g in thread_groups.values()), thread_groups


def test_alternating_groups_single_client_sequence(server):
    """Keep-alive connections, strictly A, GLOBAL, B, A, ...: the same worker
    thread tends to serve consecutive requests of different groups."""
    order = ["/a", "/global", "/b"] * 60
    expect = {"/global": "", "/a": "alpha", "/b": "beta"}
    with httpclient.KeepAlive(server.port) as client:
        for path in order:
            r = client.request("GET", path)
            assert r.status == 200, r
            check_identity(r.json(), expect[path])
    assert client.reconnects < 20


def test_module_state_is_per_interpreter(server):
    before = {p: server.get_json(p)["requests"] for p in ("/a", "/b", "/global")}
    for _ in range(3):
        server.get_json("/a")
    after = {p: server.get_json(p)["requests"] for p in ("/a", "/b", "/global")}
    assert after["/a"] == before["/a"] + 4
    assert after["/b"] == before["/b"] + 1
    assert after["/global"] == before["/global"] + 1


def test_two_scripts_in_one_named_group_share_it(server):
    a = server.get_json("/a")
    other = server.get_json("/a-other-script")
    assert other["interp"] == a["interp"] and other["group"] == "alpha"
    assert other["callable"] == "application"


def test_resource_group_is_per_script(server):
    r1, r1again, r2 = server.get_json("/res1"), server.get_json("/res1"), server.get_json("/res2")
    check_identity(r1, None)
    assert r1["interp"] == r1again["interp"]
    assert r1["interp"] not in (0, r2["interp"])
    assert r1["group"].endswith("|/res1") and r2["group"].endswith("|/res2")
    assert r1["group"] != r2["group"]


def test_server_group_is_shared_by_the_scripts_of_a_server(server):
    s1, s2 = server.get_json("/srv1"), server.get_json("/srv2")
    check_identity(s1, None)
    assert s1["interp"] == s2["interp"] != 0
    assert s1["group"] == s2["group"]
    assert "|" not in s1["group"] and s1["group"].startswith("127.0.0.1")


def test_env_group_from_setenvif(server):
    a, b = server.get_json("/a"), server.get_json("/b")
    ea, eb = server.get_json("/envsel/a"), server.get_json("/envsel/b/more")
    check_identity(ea, "alpha")
    check_identity(eb, "beta")
    assert ea["env_group"] == "alpha" and eb["env_group"] == "beta"
    assert ea["interp"] == a["interp"] and eb["interp"] == b["interp"]


def test_env_group_from_setenv(server):
    g = server.get_json("/envset")
    check_identity(g, "gamma")
    ids = {server.get_json(p)["interp"] for p in ("/a", "/b", "/global")}
    assert g["interp"] not in ids


def test_directory_group_directive(server):
    d = server.get_json("/dirgroup")
    check_identity(d, "beta")
    assert d["interp"] == server.get_json("/b")["interp"]


@pytest.mark.parametrize("path,expect", [
    ("/call-default", "application"),
    ("/call-option", "other"),
    ("/call-directive", "third"),
    ("/call-both", "other"),  # the alias's own option wins over the directory's
])
def test_callable_object(server, path, expect):
    assert server.get_json(path)["callable"] == expect


VHOSTS = """
<VirtualHost *>
    ServerName one.test
    PyInterpScriptAlias /v "{ident}" application-group=%{{SERVER}}
    PyInterpScriptAlias /r "{ident}"
</VirtualHost>
<VirtualHost *>
    ServerName two.test
    PyInterpScriptAlias /v "{ident}" application-group=%{{SERVER}}
    PyInterpScriptAlias /r "{ident}"
</VirtualHost>
""".format(ident=IDENT)


def test_server_and_resource_groups_per_virtual_host(httpd):
    server = httpd(name="vhosts", extra=VHOSTS, threads=2)
    got = {}
    for host in ("one.test", "two.test"):
        for path in ("/v", "/r"):
            d = server.get_json(path, {"Host": host})
            check_identity(d, None)
            got[host, path] = d
    assert got["one.test", "/v"]["group"].startswith("one.test")
    assert got["two.test", "/v"]["group"].startswith("two.test")
    assert got["one.test", "/r"]["group"].startswith("one.test") and got["one.test", "/r"]["group"].endswith("|/r")
    ids = {k: d["interp"] for k, d in got.items()}
    assert len(set(ids.values())) == 4, ids
