"""Views that tell which interpreter serves them and whether Flask is loaded
there."""
import sys

import django
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import apptest

IMPORT_INTERP = apptest.running_interpreter_id()


def index(request):
    return JsonResponse({
        "framework": "django",
        "version": django.get_version(),
        "interp": apptest.running_interpreter_id(),
        "import_interp": IMPORT_INTERP,
        "group": request.META.get("pyinterp.application_group"),
        "other_loaded": "flask" in sys.modules,
        "script_root": request.META.get("SCRIPT_NAME"),
        "path": request.path,
        "path_info": request.path_info,
    })


def hello(request, name):
    return HttpResponse("Hello, %s!" % name, content_type="text/plain")


@csrf_exempt
def form(request):
    return JsonResponse(dict(request.POST.items()))
