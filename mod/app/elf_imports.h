// Which symbols a shared object imports: read from its ELF dynamic symbol
// table, without loading it.  The fallback import hook asks two questions
// of every extension module before CPython loads it: does it call
// PyGILState_Ensure (so it only works in the main interpreter when it calls
// it from threads of its own), and does it use single-phase or multi-phase
// initialisation (which decides whether it may even be tried in an
// interpreter with its own GIL; see module_init).  No httpd or Python
// dependency.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pyinterp::app {

enum class elf_answer {
    imports,       // the symbol is an undefined (imported) dynamic symbol
    not_imported,  // a readable ELF shared object without that import
    unreadable     // not a file, not ELF, truncated, or not 64/32-bit little endian
};

// Does the ELF file at `path` import `symbol` dynamically?  Thread-safe;
// answers are cached by (path, size, mtime), so a changed file is read again.
elf_answer elf_imports_symbol(const std::string& path, const std::string& symbol);

// The same for up to 32 symbols in one pass: bit i of *found is set when
// symbols[i] is imported.  False (and *found 0) when the file is unreadable.
bool elf_imports_symbols(const std::string& path, const std::vector<std::string>& symbols, uint32_t* found);

// How an extension module initialises itself, judged by its imports.
//
// Multi-phase initialisation (PEP 489): PyInit_<name> returns
// PyModuleDef_Init(&def), and CPython creates the module from the
// definition.  In a subinterpreter that refuses the module (no
// Py_mod_multiple_interpreters slot declaring per-interpreter GIL support,
// in an own-GIL interpreter), CPython raises ImportError before any slot of
// the module runs: trying it is safe.
//
// Single-phase initialisation: PyInit_<name> builds the module itself with
// PyModule_Create2 (the PyModule_Create macro).  CPython refuses every such
// module in an interpreter with its own GIL, but only after running its init
// function (3.12: in that interpreter; 3.13: switched to the main
// interpreter), and that is where an extension with global state breaks the
// process (numpy 2.2's aborts with "free(): invalid pointer").  So such a
// module must be refused before it is loaded.
enum class module_init {
    multi_phase,   // imports PyModuleDef_Init, not PyModule_Create2
    single_phase,  // imports PyModule_Create2, not PyModuleDef_Init
    both,          // imports both: cannot tell (a multi-phase module making submodules, say)
    neither,       // imports neither (built some other way, or not an extension module)
    unreadable,
};

// Thread-safe, cached like elf_imports_symbol.
module_init elf_module_init(const std::string& path);

// "multi-phase", "single-phase", "both", "neither", "unreadable".
const char* module_init_name(module_init k) noexcept;

}  // namespace pyinterp::app
