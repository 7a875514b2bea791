"""Scale-out (docs/scale-out.md): two pyinterp servers behind httpd's own
mod_proxy_balancer, all on 127.0.0.1.  One backend is taken out the way the
page says (disabled in the balancer-manager, then stopped with
graceful-stop) while clients keep requesting through the balancer: no
request is lost, the stopped backend's requests in flight complete, and the
other backend takes over."""
import os
import re
import signal
import threading
import time
import urllib.parse

import harness
from httpclient import wait_until

APP = harness.app("identity")
MODULES = "/usr/lib/apache2/modules"


def backend_extra(name):
    return """
SetEnv PYGROUP {name}
PyInterpScriptAlias /app "{app}" application-group=app
""".format(name=name, app=APP)


def balancer_extra(ports):
    members = "\n".join('    BalancerMember "http://127.0.0.1:%d" retry=5 disablereuse=On' % p for p in ports)
    return """
LoadModule proxy_module "{m}/mod_proxy.so"
LoadModule proxy_http_module "{m}/mod_proxy_http.so"
LoadModule proxy_balancer_module "{m}/mod_proxy_balancer.so"
LoadModule slotmem_shm_module "{m}/mod_slotmem_shm.so"
LoadModule lbmethod_byrequests_module "{m}/mod_lbmethod_byrequests.so"
<Proxy "balancer://pyinterp">
{members}
    ProxySet lbmethod=byrequests
</Proxy>
ProxyPass "/balancer-manager" "!"
ProxyPass "/app" "balancer://pyinterp/app"
<Location "/balancer-manager">
    SetHandler balancer-manager
    Require ip 127.0.0.1
</Location>
""".format(m=MODULES, members=members)


def disable_member(front, backend):
    """What an operator does in the balancer-manager page: sets the member
    of `backend` disabled (no new requests).  The manager takes changes
    only with the page's nonce and from its own page (Referer)."""
    host = "127.0.0.1:%d" % front.port
    own = {"Host": host, "Referer": "http://%s/balancer-manager" % host}
    page = front.get("/balancer-manager", own)
    nonce = re.search(r"nonce=([0-9a-f-]+)", page.body.decode()).group(1)
    form = {"b": "pyinterp", "w": "http://127.0.0.1:%d" % backend.port, "nonce": nonce, "w_status_D": "1"}
    r = front.request("POST", "/balancer-manager", dict(own, **{"Content-Type": "application/x-www-form-urlencoded"}),
                      urllib.parse.urlencode(form).encode())
    assert r.status == 200, r


def test_graceful_stop_of_a_backend_loses_nothing(httpd, log_allow):
    # Should a request reach the stopped backend, the balancer would log
    # it at error level: the request would then be in the failures.
    log_allow(r"AH00957: http: attempt to connect to", r"AH01114: HTTP: failed to make connection",
              r"AH00959: ap_proxy_connect_backend disabling worker")
    one = httpd(name="backend-one", threads=4, extra=backend_extra("one"))
    two = httpd(name="backend-two", threads=4, extra=backend_extra("two"))
    front = httpd(name="balancer", threads=8, extra=balancer_extra([one.port, two.port]))
    served = {"one": 0, "two": 0}
    after_stop = {"one": 0, "two": 0}
    failures = []
    stopped = threading.Event()
    done = threading.Event()
    lock = threading.Lock()

    def client(slow):
        while not done.is_set():
            path = "/app?sleep=0.3" if slow else "/app"
            try:
                r = front.get(path, timeout=15)
                d = r.json() if r.status == 200 else None
            except Exception as e:  # noqa: BLE001 - every failure fails the test
                with lock:
                    failures.append(repr(e))
                continue
            with lock:
                if d is None:
                    failures.append(repr(r))
                    continue
                served[d["env_group"]] += 1
                if stopped.is_set():
                    after_stop[d["env_group"]] += 1

    threads = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: served["one"] > 10 and served["two"] > 10, 15.0), served
        # Out of the balancer first: no new request goes to it...
        disable_member(front, one)
        drained = served["one"]
        time.sleep(0.5)
        # ... then graceful-stop: it stops listening, finishes what it has
        # (the slow requests sent before it was disabled).
        os.kill(one.pid, signal.SIGWINCH)
        one.proc.wait(15)
        stopped.set()
        time.sleep(1.5)
    finally:
        done.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:10]
    assert after_stop["one"] == 0 and after_stop["two"] > 10, after_stop
    assert served["one"] <= drained + 4, (drained, served)  # at most what was in flight when disabled
    print("\nscale-out: served %s, after the stop %s" % (served, after_stop))
