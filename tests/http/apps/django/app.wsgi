# A Django project (Debian's python3-django) next to the script, loaded the
# standard way through get_wsgi_application().
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ["DJANGO_SETTINGS_MODULE"] = "djangosite.settings"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
