// Which symbols a shared object imports: read from its ELF dynamic symbol
// table, without loading it.  Used to spot extension modules that call
// PyGILState_Ensure (and so only work in the main interpreter when they call
// it from threads of their own).  No httpd or Python dependency.
#pragma once

#include <string>

namespace pyinterp::app {

enum class elf_answer {
    imports,       // the symbol is an undefined (imported) dynamic symbol
    not_imported,  // a readable ELF shared object without that import
    unreadable     // not a file, not ELF, truncated, or not 64/32-bit little/big endian we parse
};

// Does the ELF file at `path` import `symbol` dynamically?  Thread-safe;
// answers are cached by (path, size, mtime), so a changed file is read again.
elf_answer elf_imports_symbol(const std::string& path, const std::string& symbol);

}  // namespace pyinterp::app
