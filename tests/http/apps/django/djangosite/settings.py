"""Minimal settings: no database, no installed apps, no middleware beyond
CommonMiddleware."""
SECRET_KEY = "pyinterp-http-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djangosite.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
USE_TZ = True
APPEND_SLASH = False
LOGGING_CONFIG = None
