"""The import hook behind automatic placement (own GIL, shared GIL, main),
PyInterpSubinterpreterFallback and `pyinterp doctor`.

Run as module `_pyinterp_fallback` in each subinterpreter (fallback_hook.cpp
embeds this file at build time and executes it there, with `_elf_imports`
and `_elf_init_kind` set to the C readers of an ELF file's dynamic imports,
`_own_gil` to whether that interpreter has a GIL of its own and
`_late_refusal` to a C function counting refusals outside a load).  It
patches that interpreter's own ExtensionFileLoader (importlib is
per-interpreter, so the main interpreter and other subinterpreters are
untouched) rather than adding a sys.meta_path finder: every extension
module, whichever finder located it, is created and executed by that
loader, and the wrapper sees the spec (name, path) and the outcome.

Two kinds of verdicts:

* findings: the extension needs the main interpreter (it calls
  PyGILState_Ensure, refuses every subinterpreter or a second one, warns
  that it does not support them).  Collected per thread between begin() and
  end(), i.e. while a script loads; imports at request time are not checked.
* refusals, in an interpreter with its own GIL only, at any time: the
  extension cannot load there.  Single-phase init modules (and modules whose
  init kind cannot be told from their imports) are refused *before* CPython
  loads them, with the ImportError CPython would raise after running their
  init function (which is what crashes some of them); multi-phase ones are
  tried, and CPython refuses those without per-interpreter GIL support
  before running any of their code.  The importer gets the ImportError and
  may catch it (markupsafe falls back to pure Python); the executor moves
  an application whose load failed after a refusal to a shared-GIL
  interpreter.

API:
    begin(strict)   start collecting on this thread; strict: the first
                    finding raises NeedsMainInterpreter (a BaseException)
    end() -> [(module, path, reason)]   stop; the findings
    loaded() -> [[module, path, error]] every extension created since begin()
                                        (after end(): of the last load)
    refused() -> [(module, path, reason)]  own-GIL refusals since begin()
                                        (after end(): of the last load)
    take_late() -> [(module, path, reason)]  refusals outside a load on this
                                        thread since the last call
    report() -> {"loaded", "findings", "refused"}  the three lists of the
                                        current or last load on this thread
    elf_verdict(name, path) -> reason or None   (needs main)
    own_gil_verdict(name, path) -> reason or None  (refused before loading)
    NeedsMainInterpreter, NeedsSharedGil        the exception classes

Importable on its own (tests): without `_elf_imports` / `_elf_init_kind` no
extension is judged by its ELF imports.
"""
import sys, _thread
from _frozen_importlib_external import ExtensionFileLoader


class NeedsMainInterpreter(BaseException):
    """An extension module imported by the loading application needs the
    main interpreter.  args[0]: list of (module, path, reason)."""


class NeedsSharedGil(BaseException):
    """The application's load failed in an interpreter with its own GIL after
    extension modules were refused there.  args[0]: list of (module, path,
    reason); __cause__: the load's own exception."""


_REFUSALS = (
    ("does not support loading in subinterpreters",
     "CPython refuses to load it in a subinterpreter"),
    ("Interpreter change detected",
     "Cython: it can only be loaded into one interpreter per process"),
    ("do not yet support subinterpreters",
     "PyO3: it refuses to load in a subinterpreter"),
    ("may only be initialized once per interpreter process",
     "PyO3: it can only be initialized once per process"),
    ("cannot load module more than once per process",
     "it can only be loaded into one interpreter per process"),
    ("CPU dispatcher tracer already initlized",
     "numpy: it can only be initialised once per process"),
)
_CPYTHON_REFUSAL = "does not support loading in subinterpreters"
_GILSTATE = ("its ELF dynamic imports include PyGILState_Ensure: callbacks from threads it "
             "starts itself would run in the main interpreter, not in this one")

_local = _thread._local()

# Set by fallback_hook.cpp before this runs: _elf_imports(path, symbol) ->
# True, False or None (unreadable); _elf_init_kind(path) -> "multi-phase",
# "single-phase", "both", "neither" or "unreadable"; _own_gil: this
# interpreter has its own GIL; _late_refusal(): counts a refusal made
# outside a load.
_elf_imports = globals().get("_elf_imports")
_elf_init_kind = globals().get("_elf_init_kind")
_own_gil = bool(globals().get("_own_gil", False))
_late_refusal = globals().get("_late_refusal")

_INIT_REASONS = {
    "single-phase": "single-phase init: CPython refuses it in an interpreter with its own GIL only after running "
                    "its init function, which can crash the process, so it is refused before loading",
    "both": "its init kind cannot be told (it imports both PyModuleDef_Init and PyModule_Create2), so it is "
            "refused before loading as single-phase init",
    "neither": "its init kind cannot be told (it imports neither PyModuleDef_Init nor PyModule_Create2), so it is "
               "refused before loading as single-phase init",
    "unreadable": "its ELF file cannot be read to tell its init kind, so it is refused before loading",
}


def _stdlib_dynload():
    import os
    ver = "python%d.%d" % sys.version_info[:2]
    dirs = set()
    for prefix in (sys.base_prefix, sys.base_exec_prefix):
        for lib in (getattr(sys, "platlibdir", "lib"), "lib"):
            dirs.add(os.path.realpath(os.path.join(prefix, lib, ver, "lib-dynload")) + os.sep)
    return tuple(dirs)


_DYNLOAD = _stdlib_dynload()


def known_good(name, path):
    """CPython's own lib-dynload modules (_sqlite3, _ssl, ...): they use the
    PyGILState API only synchronously, from the thread that called them."""
    import os
    return (name.partition(".")[0] in sys.stdlib_module_names
            and os.path.realpath(path).startswith(_DYNLOAD))


def elf_verdict(name, path):
    """The reason an extension needs the main interpreter judging by its
    ELF imports, or None."""
    if not path or _elf_imports is None or known_good(name, path):
        return None
    return _GILSTATE if _elf_imports(path, "PyGILState_Ensure") else None


def own_gil_verdict(name, path):
    """Why an extension must not even be tried in an interpreter with its own
    GIL (judging by how it initialises itself), or None: multi-phase init
    modules are tried, CPython refuses them safely when they lack
    per-interpreter GIL support."""
    if _elf_init_kind is None:
        return None
    kind = _elf_init_kind(path) if path else "unreadable"
    return _INIT_REASONS.get(kind)


def refusal(exc):
    """Why an exception raised while an extension loads means it needs the
    main interpreter, or None.  CPython's own refusal means that only in an
    interpreter sharing the main GIL (Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED);
    with an own GIL it is an own-GIL refusal (see cpython_refusal)."""
    text = str(exc)
    if _own_gil and _CPYTHON_REFUSAL in text:
        return None
    for needle, reason in ((_CPYTHON_REFUSAL, "CPython refuses to load it in a subinterpreter"),) + _REFUSALS:
        if needle in text:
            return "%s (%s)" % (reason, text)
    return None


def cpython_refusal(exc):
    """With an own GIL: why CPython refused the extension there, or None."""
    text = str(exc)
    if _own_gil and isinstance(exc, ImportError) and _CPYTHON_REFUSAL in text:
        return "CPython refuses it in an interpreter with its own GIL: it does not declare per-interpreter GIL " \
               "support (%s)" % text
    return None


class _Context:
    __slots__ = ("strict", "findings", "loaded", "refused", "warnings", "caught")


def begin(strict):
    import warnings
    ctx = _Context()
    ctx.strict = bool(strict)
    ctx.findings = []
    ctx.loaded = []
    ctx.refused = []
    # Warnings are interpreter-wide: another thread's warnings during the
    # load are recorded too, and re-emitted by end().
    ctx.warnings = warnings.catch_warnings(record=True)
    ctx.caught = ctx.warnings.__enter__()
    warnings.simplefilter("always")
    _local.ctx = ctx


def end():
    """The findings: list of (module, path, reason)."""
    ctx = getattr(_local, "ctx", None)
    _local.ctx = None
    if ctx is None:
        return []
    ctx.warnings.__exit__(None, None, None)
    _warnings_found(ctx)
    _local.last = ctx
    return ctx.findings


def _current_or_last():
    ctx = getattr(_local, "ctx", None)
    return ctx if ctx is not None else getattr(_local, "last", None)


def loaded():
    """Every extension module created since begin() (after end(): during the
    last load on this thread), in order: list of (module, path, error or
    None).  For `pyinterp doctor`."""
    ctx = _current_or_last()
    return list(ctx.loaded) if ctx is not None else []


def refused():
    """The extensions refused in this own-GIL interpreter since begin()
    (after end(): during the last load on this thread): list of (module,
    path, reason)."""
    ctx = _current_or_last()
    return list(ctx.refused) if ctx is not None else []


def report():
    """loaded(), the findings and refused() of the current load on this
    thread, or of the last one: for `pyinterp doctor`."""
    ctx = _current_or_last()
    if ctx is None:
        return {"loaded": [], "findings": [], "refused": []}
    return {"loaded": list(ctx.loaded), "findings": list(ctx.findings), "refused": list(ctx.refused)}


def take_late():
    """Refusals on this thread outside a load (imports while serving a
    request) since the last call, and forgets them."""
    late = getattr(_local, "late", None)
    _local.late = []
    return late or []


def _found(ctx, name, path, reason, cause=None):
    ctx.findings.append((name, path or "", reason))
    if ctx.strict:
        raise NeedsMainInterpreter(list(ctx.findings)) from cause


def _refused(ctx, name, path, reason):
    entry = (name, path or "", reason)
    if ctx is not None:
        ctx.refused.append(entry)
        return
    late = getattr(_local, "late", None)
    if late is None:
        late = _local.late = []
    late.append(entry)
    if _late_refusal is not None:
        _late_refusal()


def _guarded(ctx, call, spec):
    try:
        return call()
    except (NeedsMainInterpreter, NeedsSharedGil):
        raise
    except Exception as exc:
        why = cpython_refusal(exc)
        if why:
            _refused(ctx, spec.name, spec.origin, why)
            raise
        reason = refusal(exc) if ctx is not None else None
        if reason:
            _found(ctx, spec.name, spec.origin, reason, exc)
        raise


def _warnings_found(ctx):
    """Sub-interpreter warnings recorded during the load become findings
    (numpy warns from its package __init__, after its extensions loaded);
    every other warning is re-emitted under the restored filters."""
    import warnings
    flagged = []
    for w in ctx.caught:
        text = str(w.message)
        if issubclass(w.category, UserWarning) and ("sub-interpreter" in text or "subinterpreter" in text):
            flagged.append(w)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    for w in flagged:
        text = str(w.message)
        name, path = None, w.filename
        for mod, origin, _err in ctx.loaded:
            top = mod.partition(".")[0]
            if top.lower() in text.lower():
                name, path = top, origin
                break
        ctx.findings.append((name or w.filename, path,
                             "it warns that it does not support sub-interpreters (%s)" % text.split(". ")[0]))


_create_module = ExtensionFileLoader.create_module
_exec_module = ExtensionFileLoader.exec_module


def _refuse_before_loading(ctx, spec, why):
    """The ImportError CPython would raise after running the init function,
    raised instead of running it."""
    _refused(ctx, spec.name, spec.origin, why)
    raise ImportError("module %s does not support loading in subinterpreters with their own GIL (%s)"
                      % (spec.name, why), name=spec.name, path=spec.origin)


def create_module(self, spec):
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        if _own_gil:
            why = own_gil_verdict(spec.name, spec.origin)
            if why:
                _refuse_before_loading(None, spec, why)
            return _guarded(None, lambda: _create_module(self, spec), spec)
        return _create_module(self, spec)
    entry = [spec.name, spec.origin or "", None]
    ctx.loaded.append(entry)
    try:
        reason = elf_verdict(spec.name, spec.origin)
        if reason:
            _found(ctx, spec.name, spec.origin, reason)
        why = own_gil_verdict(spec.name, spec.origin) if _own_gil else None
        if why:
            _refuse_before_loading(ctx, spec, why)
        return _guarded(ctx, lambda: _create_module(self, spec), spec)
    except BaseException as exc:
        entry[2] = "%s: %s" % (type(exc).__name__, exc)
        raise


def exec_module(self, module):
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        return _exec_module(self, module) if not _own_gil else \
            _guarded(None, lambda: _exec_module(self, module), module.__spec__)
    try:
        return _guarded(ctx, lambda: _exec_module(self, module), module.__spec__)
    except BaseException as exc:
        for entry in reversed(ctx.loaded):
            if entry[0] == module.__name__:
                entry[2] = entry[2] or "%s: %s" % (type(exc).__name__, exc)
                break
        raise


if not getattr(ExtensionFileLoader, "_pyinterp_hooked", False):
    ExtensionFileLoader.create_module = create_module
    ExtensionFileLoader.exec_module = exec_module
    ExtensionFileLoader._pyinterp_hooked = True
