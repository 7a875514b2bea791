# A script whose loading never ends (it spins at import): the request that
# loads it runs past its timeout before the application exists.
while True:
    pass


def application(environ, start_response):  # never reached
    start_response("200 OK", [])
    return [b""]
