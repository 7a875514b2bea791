# A Flask application (Debian's python3-flask), in a package next to the
# script, the usual layout.
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from flaskapp import app as application  # noqa: E402,F401
