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
        # After end(), what the last load on this thread loaded; a new
        # begin() starts afresh.
        self.assertEqual(hook.loaded(), loaded)
        hook.begin(False)
        try:
            self.assertEqual(hook.loaded(), [])
        finally:
            hook.end()


class OwnGilRefusals(unittest.TestCase):
    """What the hook does in an interpreter with its own GIL (forced on in
    this plain interpreter through the hook's module globals)."""

    def setUp(self):
        hook._own_gil = True
        hook._late_refusal = self.count_late
        self.late_count = 0

    def tearDown(self):
        hook._own_gil = False
        hook._elf_init_kind = None
        hook._late_refusal = None
        hook.take_late()

    def count_late(self):
        self.late_count += 1

    def test_only_multi_phase_modules_are_tried(self):
        hook._elf_init_kind = lambda path: {"/m.so": "multi-phase", "/s.so": "single-phase", "/b.so": "both",
                                            "/n.so": "neither"}.get(path, "unreadable")
        self.assertIsNone(hook.own_gil_verdict("m", "/m.so"))
        self.assertIn("single-phase init", hook.own_gil_verdict("s", "/s.so"))
        self.assertIn("cannot be told", hook.own_gil_verdict("b", "/b.so"))
        self.assertIn("cannot be told", hook.own_gil_verdict("n", "/n.so"))
        self.assertIn("cannot be read", hook.own_gil_verdict("u", "/u.so"))

    def test_cpythons_refusal_is_an_own_gil_refusal_not_a_finding(self):
        exc = ImportError("module x does not support loading in subinterpreters")
        self.assertIsNone(hook.refusal(exc))
        self.assertIn("per-interpreter GIL", hook.cpython_refusal(exc))
        # The other refusals still need main, own GIL or not.
        self.assertIn("Cython", hook.refusal(ImportError("Interpreter change detected - this module ...")))
        self.assertIn("one interpreter per process",
                      hook.refusal(ImportError("cannot load module more than once per process")))
        self.assertIn("numpy", hook.refusal(RuntimeError("CPU dispatcher tracer already initlized")))
        hook._own_gil = False
        self.assertIsNone(hook.cpython_refusal(exc))
        self.assertIn("CPython refuses", hook.refusal(exc))

    def test_a_refused_module_raises_importerror_before_it_loads(self):
        hook._elf_init_kind = lambda path: "single-phase"
        sys.modules.pop("_testbuffer", None)
        hook.begin(True)
        try:
            with self.assertRaises(ImportError) as raised:
                import _testbuffer  # noqa: F401
        finally:
            findings = hook.end()
        self.assertIn("does not support loading in subinterpreters", str(raised.exception))
        self.assertNotIn("_testbuffer", sys.modules)
        self.assertEqual(findings, [])  # not a reason to go to main
        self.assertEqual([r[0] for r in hook.refused()], ["_testbuffer"])
        self.assertTrue(issubclass(hook.NeedsSharedGil, BaseException))
        self.assertFalse(issubclass(hook.NeedsSharedGil, Exception))

    def test_refusals_outside_a_load_are_counted_and_taken_once(self):
        hook._elf_init_kind = lambda path: "single-phase"
        sys.modules.pop("_testbuffer", None)
        with self.assertRaises(ImportError):
            import _testbuffer  # noqa: F401
        self.assertEqual(self.late_count, 1)
        self.assertEqual([r[0] for r in hook.take_late()], ["_testbuffer"])
        self.assertEqual(hook.take_late(), [])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
