# A PyInterpImportScript that fails at import: logged at child start, the
# server goes on.
raise RuntimeError("pyinterp-test-preload-failed")
