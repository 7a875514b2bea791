# Benchmark app: about 1 ms of pure-Python CPU per request (a fixed loop;
# ~1 ms with Debian's Python 3.11 on the benchmark machine).
LOOPS = 36000


def burn(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def application(environ, start_response):
    body = b"%d\n" % burn(LOOPS)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
