"""PyInterpSlowRequestTime: a request still running after that long gets one
error-log entry with its group, URL and Python stack, read inside its own
interpreter by the child's watchdog thread, and another when it ends, with
its total time.  Fast requests and requests where the directive is Off get
none."""
import re
import threading

import pytest

import harness
from conftest import start_shared_server

SLOW = harness.app("slow")

EXTRA = """
PyInterpSlowRequestTime 0.4
PyInterpScriptAlias /slow-a "{app}" application-group=slow-a
PyInterpScriptAlias /slow-b "{app}" application-group=slow-b
PyInterpScriptAlias /slow-global "{app}" application-group=%{{GLOBAL}}
PyInterpScriptAlias /quiet "{app}" application-group=slow-a
<Location /quiet>
    PyInterpSlowRequestTime Off
</Location>
""".format(app=SLOW)


@pytest.fixture(scope="module")
def server(request):
    return start_shared_server(request, "slow", extra=EXTRA, threads=4)


HEAD = re.compile(r"PYI0801: slow request #(\d+): (\S+) in application group '([^']*)' "
                  r"\(interpreter '([^']*)', id (-?\d+)\) has run for ([\d.]+) s")


def entry_for(text, url):
    """(header match, stack lines, ended match) of the one PYI0801 entry for `url`."""
    heads = [m for m in HEAD.finditer(text) if m.group(2) == url]
    assert len(heads) == 1, text
    head = heads[0]
    number = head.group(1)
    stack = re.findall(r"PYI0801: #%s   (.*)" % number, text)
    ended = re.search(r"PYI0802: slow request #%s: (\S+) in application group '([^']*)' ended after ([\d.]+) s"
                      % number, text)
    return head, stack, ended


def test_a_slow_request_logs_its_stack_from_its_own_interpreter(server):
    start = server.log_size()
    url = "/slow-a/sleep?seconds=1.2"
    served = server.get_json(url)
    text = server.wait_for_log(r"PYI0802: slow request", start) and server.log_text(start)
    head, stack, ended = entry_for(text, url)
    assert head.group(3) == "slow-a"
    assert head.group(4) == "slow-a"
    assert int(head.group(5)) == served["interp"]  # the interpreter CPython says served it
    assert 0.3 <= float(head.group(6)) < 1.2
    # Most recent call last: the application, then the function it sleeps in.
    assert re.fullmatch(r'File ".*/slow/app\.wsgi", line \d+, in application', stack[-2]), stack
    assert re.fullmatch(r'File ".*/slow/app\.wsgi", line \d+, in sleeps_for_a_while', stack[-1]), stack
    assert ended is not None and ended.group(1) == url and ended.group(2) == "slow-a", text
    assert 1.2 <= float(ended.group(3)) < 10
    # Logged at warning level, the stack against the server, the end against the request.
    assert re.search(r"\[pyinterp:warn\] .*PYI0801: slow request", text)
    assert re.search(r"\[pyinterp:warn\] .*\[client 127\.0\.0\.1:\d+\] PYI0802", text)


def test_concurrent_slow_requests_in_three_interpreters(server):
    start = server.log_size()
    urls = ["/slow-a/sleep?seconds=1.0", "/slow-b/sleep?seconds=1.1", "/slow-global/sleep?seconds=1.2"]
    results = {}

    def fetch(u):
        results[u] = server.get_json(u)

    threads = [threading.Thread(target=fetch, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.wait_for_log(r"(?s)(PYI0802.*){3}", start)
    text = server.log_text(start)
    for url, group in zip(urls, ["slow-a", "slow-b", "%{GLOBAL}"]):
        head, stack, ended = entry_for(text, url)
        assert head.group(3) == group
        assert int(head.group(5)) == results[url]["interp"]
        assert stack[-1].endswith("in sleeps_for_a_while"), stack
        assert ended is not None
    assert len({r["interp"] for r in results.values()}) == 3


def test_fast_requests_and_requests_where_it_is_off_log_nothing(server):
    start = server.log_size()
    for _ in range(5):
        server.get_json("/slow-a/fast")
    server.get_json("/quiet/sleep?seconds=1.0")
    server.get_json("/slow-b/sleep?seconds=0.05")
    server.settle_log()
    text = server.log_text(start)
    assert "PYI0801" not in text and "PYI0802" not in text, text


def test_bad_values_fail_configtest(httpd):
    for value, message in [("-1", "is not a number of seconds"), ("soon", "is not a number of seconds"),
                           ("1e9", "between 0 and 86400")]:
        server = httpd(name="bad-slow", start=False, extra="PyInterpSlowRequestTime %s\n" % value)
        rc, out = server.configtest()
        assert rc != 0, out
        assert "PyInterpSlowRequestTime: '%s' %s" % (value, message) in out or message in out, out
        assert "PyInterpSlowRequestTime" in out, out
