"""A small Flask application: a JSON view that tells which interpreter
serves it and whether Django is loaded there, a route parameter, a form
post, a JSON post, an error handler."""
import sys

import flask
from flask import Flask, abort, jsonify, request

import apptest

app = Flask(__name__)
IMPORT_INTERP = apptest.running_interpreter_id()


@app.route("/")
def index():
    return jsonify(
        framework="flask",
        version=flask.__version__,
        interp=apptest.running_interpreter_id(),
        import_interp=IMPORT_INTERP,
        group=request.environ.get("pyinterp.application_group"),
        other_loaded="django" in sys.modules,
        script_root=request.script_root,
        url=request.url,
    )


@app.route("/hello/<name>")
def hello(name):
    return "Hello, %s!" % name


@app.route("/form", methods=["POST"])
def form():
    return jsonify(dict(request.form))


@app.route("/json", methods=["POST"])
def json_echo():
    return jsonify(got=request.get_json())


@app.route("/missing")
def missing():
    abort(404)
