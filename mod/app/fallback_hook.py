"""The import hook behind PyInterpSubinterpreterFallback and `pyinterp doctor`.

Run as module `_pyinterp_fallback` in each subinterpreter (fallback_hook.cpp
embeds this file at build time and executes it there, with `_elf_imports`
set to the C reader of ELF dynamic imports).  It patches that interpreter's
own ExtensionFileLoader (importlib is per-interpreter, so the main
interpreter and other subinterpreters are untouched) rather than adding a
sys.meta_path finder: every extension module, whichever finder located it,
is created and executed by that loader, and the wrapper sees the spec (name,
path) and the outcome.  Collection is per thread and only between begin()
and end(), i.e. while a script loads; imports at request time are not
checked.

API:
    begin(strict)   start collecting on this thread; strict: the first
                    finding raises NeedsMainInterpreter (a BaseException)
    end() -> [(module, path, reason)]   stop; the findings
    loaded() -> [[module, path, error]] every extension created since begin()
    elf_verdict(name, path) -> reason or None
    NeedsMainInterpreter                the exception class

Importable on its own (tests): without `_elf_imports` no extension is judged
by its ELF imports.
"""
import sys, _thread
from _frozen_importlib_external import ExtensionFileLoader


class NeedsMainInterpreter(BaseException):
    """An extension module imported by the loading application needs the
    main interpreter.  args[0]: list of (module, path, reason)."""


_REFUSALS = (
    ("does not support loading in subinterpreters",
     "CPython refuses to load it in a subinterpreter"),
    ("Interpreter change detected",
     "Cython: it can only be loaded into one interpreter per process"),
    ("do not yet support subinterpreters",
     "PyO3: it refuses to load in a subinterpreter"),
    ("may only be initialized once per interpreter process",
     "PyO3: it can only be initialized once per process"),
)
_GILSTATE = ("its ELF dynamic imports include PyGILState_Ensure: callbacks from threads it "
             "starts itself would run in the main interpreter, not in this one")

_local = _thread._local()

# Set by fallback_hook.cpp before this runs: _elf_imports(path, symbol) ->
# True, False or None (unreadable).
_elf_imports = globals().get("_elf_imports")


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


def refusal(exc):
    text = str(exc)
    for needle, reason in _REFUSALS:
        if needle in text:
            return "%s (%s)" % (reason, text)
    return None


class _Context:
    __slots__ = ("strict", "findings", "loaded", "warnings", "caught")


def begin(strict):
    import warnings
    ctx = _Context()
    ctx.strict = bool(strict)
    ctx.findings = []
    ctx.loaded = []
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
    return ctx.findings


def loaded():
    """Every extension module created since begin(), in order: list of
    (module, path, error or None).  For `pyinterp doctor`."""
    ctx = getattr(_local, "ctx", None)
    return list(ctx.loaded) if ctx is not None else []


def _found(ctx, name, path, reason, cause=None):
    ctx.findings.append((name, path or "", reason))
    if ctx.strict:
        raise NeedsMainInterpreter(list(ctx.findings)) from cause


def _guarded(ctx, call, spec):
    try:
        return call()
    except NeedsMainInterpreter:
        raise
    except ImportError as exc:
        reason = refusal(exc)
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


def create_module(self, spec):
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        return _create_module(self, spec)
    entry = [spec.name, spec.origin or "", None]
    ctx.loaded.append(entry)
    reason = elf_verdict(spec.name, spec.origin)
    if reason:
        _found(ctx, spec.name, spec.origin, reason)
    try:
        return _guarded(ctx, lambda: _create_module(self, spec), spec)
    except BaseException as exc:
        entry[2] = "%s: %s" % (type(exc).__name__, exc)
        raise


def exec_module(self, module):
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        return _exec_module(self, module)
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
