# No extension modules beyond the standard library.
import json


def application(environ, start_response):
    body = json.dumps({"interp": environ["pyinterp.interpreter_id"],
                       "group": environ["pyinterp.application_group"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
