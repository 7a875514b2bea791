"""PyInterpSubinterpreterFallback: route, refuse, allow, and the extensions
and applications that stay in their subinterpreter."""
import harness
from conftest import app


def alias(url, name, *options):
    return "PyInterpScriptAlias %s %s %s" % (url, app(name), " ".join(options))


def test_route_moves_gilstate_app_to_main(serve):
    srv = serve(alias("/g", "gilstate"))
    for _ in range(4):  # every request, on either worker thread, runs in main
        status, body = srv.get("/g")
        assert status == 200, body
        assert body["interp"] == 0 and body["group"] == ""
        assert body["callback_interp"] == 0
        assert body["callback_saw_app_state"] is True
    line = srv.wait_log(r"PYI0210: ")
    assert str(app("gilstate")) in line and "sg_gilstate" in line and "PyGILState_Ensure" in line
    assert "sg_gilstate.cpython" in line  # the extension's path
    assert srv.log().count("PYI0210: ") == 1
    # The abandoned subinterpreter was ended.
    srv.wait_log(r"PYI0214: ended interpreter")


def test_the_status_page_shows_the_move(serve, module_so):
    """The interpreter an application was moved from counts it as routed
    away; the main interpreter serves its requests and says why
    applications run there."""
    srv = serve(alias("/g", "gilstate") + "\n<Location /pyinterp-status>\n    SetHandler pyinterp-status\n"
                "    Require all granted\n</Location>")
    for _ in range(3):
        assert srv.get("/g")[0] == 200
    srv.wait_log(r"PYI0210: ")
    status, doc = srv.get("/pyinterp-status?format=json")
    assert status == 200, doc
    interps = [i for c in doc["children"] for i in c["interpreters"]]
    moved = [i for i in interps if i["routed_away"] > 0]
    # Left from its group's interpreter: a shared-GIL one, or with gil=auto
    # on Python 3.12.4+ an own-GIL one.
    left = harness.auto_placement(harness.module_python(module_so))
    assert moved and all(i["placement"] == left and "/g" in i["group"] for i in moved), interps
    # Once per child that loaded it.
    assert sum(i["routed_away"] for i in moved) == srv.log().count("PYI0210: "), interps
    main = [i for i in interps if i["placement"] == "main"]
    assert main and sum(i["requests"] for i in main) == 3, interps
    assert all("PyInterpSubinterpreterFallback" in i["why"] and i["routed_away"] == 0 for i in main), main
    assert all(i["requests"] == 0 for i in moved), moved


def test_refuse_answers_500_and_names_the_directive(serve):
    srv = serve("PyInterpSubinterpreterFallback refuse\n" + alias("/g", "gilstate"))
    srv.allow(r"PYI0211: ")
    status, _ = srv.get("/g")
    assert status == 500
    line = srv.wait_log(r"PYI0211: ")
    assert "sg_gilstate" in line and "application-group=%{GLOBAL}" in line
    assert "PyInterpSubinterpreterFallback route" in line


def test_alias_option_overrides_directive(serve):
    srv = serve("PyInterpSubinterpreterFallback refuse\n" +
                alias("/g", "gilstate", "subinterpreter-fallback=route") + "\n" +
                alias("/r", "gilstate", "application-group=other"))
    srv.allow(r"PYI0211: ")
    status, body = srv.get("/g")
    assert status == 200 and body["interp"] == 0
    status, _ = srv.get("/r")
    assert status == 500
    assert "PyInterpSubinterpreterFallback refuse" in srv.wait_log(r"PYI0211: ")


def test_allow_loads_in_subinterpreter_and_warns_once(serve):
    srv = serve(alias("/g", "gilstate", "subinterpreter-fallback=allow"))
    for _ in range(3):
        status, body = srv.get("/g")
        assert status == 200, body
        assert body["interp"] != 0
        # What the warning is about: the callback ran in another interpreter.
        assert body["callback_interp"] != body["interp"]
        assert body["callback_saw_app_state"] is False
    line = srv.wait_log(r"PYI0212: ")
    assert "sg_gilstate" in line and "subinterpreter-fallback=allow" in line
    assert srv.log().count("PYI0212: ") == 1


def test_dispatch_extension_stays_in_subinterpreter(serve):
    srv = serve(alias("/d", "dispatch"))
    for _ in range(4):
        status, body = srv.get("/d")
        assert status == 200, body
        assert body["interp"] != 0
        assert body["callback_interp"] == body["interp"]
        assert body["callback_saw_app_state"] is True
    assert "PYI0210: " not in srv.log()


def test_numpy_app_is_routed_to_main(serve):
    srv = serve(alias("/n", "numpy"))
    status, body = srv.get("/n")
    assert status == 200, body
    assert body["interp"] == 0 and body["sum"] == 45
    line = srv.wait_log(r"PYI0210: ")
    assert "numpy" in line and "_multiarray_umath" in line


def test_sqlite_app_stays_and_its_callbacks_run_there(serve):
    srv = serve(alias("/s", "sqlite"))
    for _ in range(4):
        status, body = srv.get("/s")
        assert status == 200, body
        assert body["interp"] != 0
        assert body["callback_interps"] == [body["interp"]] * 2
    assert "PYI0210: " not in srv.log()


def test_two_routed_apps_are_told_they_share_main(serve):
    srv = serve(alias("/g", "gilstate") + "\n" + alias("/n", "numpy") + "\n" + alias("/s", "sqlite"))
    assert srv.get("/g")[1]["interp"] == 0
    assert srv.get("/n")[1]["interp"] == 0
    assert srv.get("/s")[1]["interp"] != 0
    line = srv.wait_log(r"PYI0213: ")
    assert "lose isolation" in line and str(app("gilstate")) in line and str(app("numpy")) in line


def test_global_group_is_main_on_every_thread(serve):
    srv = serve(alias("/g", "gilstate", "application-group=%{GLOBAL}") + "\n" + alias("/s", "sqlite"),
                threads=2)
    for _ in range(6):
        assert srv.get("/s")[1]["interp"] != 0
        status, body = srv.get("/g")
        assert body["interp"] == 0 and body["callback_interp"] == 0 and body["callback_saw_app_state"]
    assert "PYI0210: " not in srv.log()  # nothing to route: it asked for main


def test_bad_policy_fails_configtest(module_so, ext_dir, workdir):
    from conftest import Server
    srv = Server(workdir, module_so, ext_dir, "PyInterpSubinterpreterFallback sometimes")
    rc, out = srv.configtest()
    assert rc != 0 and "PyInterpSubinterpreterFallback: unknown subinterpreter fallback 'sometimes'" in out
    srv = Server(workdir, module_so, ext_dir, "PyInterpScriptAlias /x %s subinterpreter-fallback=maybe" % app("plain"))
    rc, out = srv.configtest()
    assert rc != 0 and "PyInterpScriptAlias: unknown subinterpreter fallback 'maybe'" in out
