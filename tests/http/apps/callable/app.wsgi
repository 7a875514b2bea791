# Several callables in one script: PyInterpCallableObject and the alias's
# callable= option choose one.
import apptest


def reply(start_response, environ, name):
    return apptest.json_response(start_response, dict(apptest.identity(environ), callable=name))


def application(environ, start_response):
    return reply(start_response, environ, "application")


def other(environ, start_response):
    return reply(start_response, environ, "other")


def third(environ, start_response):
    return reply(start_response, environ, "third")
