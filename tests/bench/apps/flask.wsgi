# Benchmark app: a small Flask application rendering a Jinja template (for
# the memory an own-GIL interpreter with Flask loaded costs).
from flask import Flask, render_template_string

app = Flask(__name__)
PAGE = "<!doctype html><title>{{ title }}</title><ul>{% for i in items %}<li>{{ i }}</li>{% endfor %}</ul>"


@app.route("/")
def index():
    return render_template_string(PAGE, title="pyinterp", items=range(10))


application = app
