"""mod/app/fallback_hook.py imported on its own, as the tree has it (the
binaries embed a copy at build time).  Run by ctest with the Python the
build uses: fallback_hook_test.py <a shared object importing
PyGILState_Ensure>."""
import importlib.util
import pathlib
import sys
import unittest
import warnings

HOOK = pathlib.Path(__file__).resolve().parents[2] / "mod" / "app" / "fallback_hook.py"
GILSTATE_SO = sys.argv[1] if len(sys.argv) > 1 else None


def load_hook():
    spec = importlib.util.spec_from_file_location("fallback_hook_under_test", HOOK)
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return hook


hook = load_hook()


class FallbackHook(unittest.TestCase):
    def test_refusals_are_recognised(self):
        self.assertIn("CPython refuses",
                      hook.refusal(ImportError("module x does not support loading in subinterpreters")))
        self.assertIn("Cython", hook.refusal(ImportError("Interpreter change detected - this module ...")))
        self.assertIn("PyO3", hook.refusal(ImportError("PyO3 modules do not yet support subinterpreters")))
        self.assertIsNone(hook.refusal(ImportError("No module named 'x'")))

    def test_without_the_elf_reader_nothing_is_judged_by_imports(self):
        self.assertIsNone(hook.elf_verdict("ext", GILSTATE_SO))

    def test_the_elf_reader_flags_pygilstate_ensure(self):
        calls = []
        hook._elf_imports = lambda path, symbol: calls.append((path, symbol)) or True
        try:
            self.assertIn("PyGILState_Ensure", hook.elf_verdict("thirdparty_ext", GILSTATE_SO))
            self.assertEqual(calls, [(GILSTATE_SO, "PyGILState_Ensure")])
            # CPython's own lib-dynload modules are known to be fine.
            import _sqlite3
            self.assertIsNone(hook.elf_verdict("_sqlite3", _sqlite3.__file__))
        finally:
            hook._elf_imports = None

    def test_sub_interpreter_warnings_become_findings_and_others_are_reemitted(self):
        hook.begin(False)
        warnings.warn("x was imported from a Python sub-interpreter but x does not support it")
        with warnings.catch_warnings(record=True) as other:
            warnings.simplefilter("always")
            warnings.warn("an ordinary warning")
            findings = hook.end()
        self.assertEqual(len(findings), 1)
        self.assertIn("does not support sub-interpreters", findings[0][2])
        self.assertTrue(any("an ordinary warning" in str(w.message) for w in other))

    def test_strict_raises_needs_main_interpreter_on_the_first_finding(self):
        ctx = hook._Context()
        ctx.strict, ctx.findings, ctx.loaded = True, [], []
        with self.assertRaises(hook.NeedsMainInterpreter) as raised:
            hook._found(ctx, "m", "/m.so", "a reason")
        self.assertEqual(raised.exception.args[0], [("m", "/m.so", "a reason")])
        self.assertFalse(issubclass(hook.NeedsMainInterpreter, Exception))

    def test_extension_loads_are_recorded_between_begin_and_end(self):
        sys.modules.pop("_testbuffer", None)
        hook.begin(False)
        try:
            import _testbuffer  # noqa: F401 -- an extension module nothing else imports
            loaded = hook.loaded()
        finally:
            hook.end()
        self.assertTrue(any(name == "_testbuffer" and error is None for name, _path, error in loaded), loaded)
        self.assertEqual(hook.loaded(), [])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
