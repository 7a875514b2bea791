// Reading an extension's dynamic imports without loading it.
#include "app/elf_imports.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

using pyinterp::app::elf_answer;
using pyinterp::app::elf_imports_symbol;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const char* name) {
    fs::path dir = fs::temp_directory_path() / ("pyinterp-elf-" + std::to_string(getpid()));
    fs::create_directories(dir);
    return dir / name;
}

}  // namespace

TEST(ElfImports, FindsAnImportedSymbol) {
    EXPECT_EQ(elf_imports_symbol(FIXTURE_CALLS_GILSTATE, "PyGILState_Ensure"), elf_answer::imports);
    EXPECT_EQ(elf_imports_symbol(FIXTURE_CALLS_GILSTATE, "PyGILState_Release"), elf_answer::imports);
}

TEST(ElfImports, DefinedOrAbsentSymbolsAreNotImports) {
    EXPECT_EQ(elf_imports_symbol(FIXTURE_NO_GILSTATE, "PyGILState_Ensure"), elf_answer::not_imported);
    EXPECT_EQ(elf_imports_symbol(FIXTURE_NO_GILSTATE, "PyLong_FromLong"), elf_answer::imports);
    // Defined by the fixture itself, not imported.
    EXPECT_EQ(elf_imports_symbol(FIXTURE_NO_GILSTATE, "fixture_answer"), elf_answer::not_imported);
    // A prefix of an imported name is not a match.
    EXPECT_EQ(elf_imports_symbol(FIXTURE_CALLS_GILSTATE, "PyGILState_Ens"), elf_answer::not_imported);
}

TEST(ElfImports, RealStdlibExtension) {
    // CPython's own sqlite3 module calls PyGILState_Ensure from SQLite
    // callbacks (synchronously, which the dispatch layer keeps right).
    EXPECT_EQ(elf_imports_symbol(STDLIB_SQLITE3_SO, "PyGILState_Ensure"), elf_answer::imports);
}

TEST(ElfImports, BadFilesAreUnreadable) {
    EXPECT_EQ(elf_imports_symbol("/nonexistent/x.so", "PyGILState_Ensure"), elf_answer::unreadable);
    EXPECT_EQ(elf_imports_symbol(fs::temp_directory_path().string(), "PyGILState_Ensure"), elf_answer::unreadable);
    fs::path text = scratch("text.so");
    std::ofstream(text) << "not an ELF file at all, but long enough to have a header";
    EXPECT_EQ(elf_imports_symbol(text.string(), "PyGILState_Ensure"), elf_answer::unreadable);
    // A truncated copy of a real object: the header points past the end.
    fs::path cut = scratch("cut.so");
    fs::copy_file(FIXTURE_CALLS_GILSTATE, cut, fs::copy_options::overwrite_existing);
    fs::resize_file(cut, 200);
    EXPECT_EQ(elf_imports_symbol(cut.string(), "PyGILState_Ensure"), elf_answer::unreadable);
    fs::remove_all(text.parent_path());
}

TEST(ElfImports, AnswersFollowTheFileWhenItChanges) {
    fs::path so = scratch("changing.so");
    fs::copy_file(FIXTURE_NO_GILSTATE, so, fs::copy_options::overwrite_existing);
    EXPECT_EQ(elf_imports_symbol(so.string(), "PyGILState_Ensure"), elf_answer::not_imported);
    EXPECT_EQ(elf_imports_symbol(so.string(), "PyGILState_Ensure"), elf_answer::not_imported);  // cached
    fs::copy_file(FIXTURE_CALLS_GILSTATE, so, fs::copy_options::overwrite_existing);
    // Make sure the modification time differs even on a coarse clock.
    fs::last_write_time(so, fs::last_write_time(so) + std::chrono::seconds(2));
    EXPECT_EQ(elf_imports_symbol(so.string(), "PyGILState_Ensure"), elf_answer::imports);
    fs::remove_all(so.parent_path());
}

TEST(ElfImports, SeveralSymbolsInOnePass) {
    uint32_t found = 0;
    EXPECT_TRUE(pyinterp::app::elf_imports_symbols(
        FIXTURE_CALLS_GILSTATE, {"PyLong_FromLong", "PyGILState_Release", "PyGILState_Ensure"}, &found));
    EXPECT_EQ(found, 6u);  // not PyLong_FromLong
    EXPECT_FALSE(pyinterp::app::elf_imports_symbols("/nonexistent/x.so", {"PyGILState_Ensure"}, &found));
    EXPECT_EQ(found, 0u);
}

TEST(ElfImports, TellsSingleFromMultiPhaseInit) {
    using pyinterp::app::elf_module_init;
    using pyinterp::app::module_init;
    EXPECT_EQ(elf_module_init(FIXTURE_SINGLE_PHASE_EXT), module_init::single_phase);
    EXPECT_EQ(elf_module_init(FIXTURE_MULTI_PHASE_EXT), module_init::multi_phase);
    EXPECT_EQ(elf_module_init(FIXTURE_PER_GIL_EXT), module_init::multi_phase);
    EXPECT_EQ(elf_module_init(FIXTURE_GILSTATE_EXT), module_init::multi_phase);
    // CPython's own _sqlite3 is multi-phase on every supported version.
    EXPECT_EQ(elf_module_init(STDLIB_SQLITE3_SO), module_init::multi_phase);
    // A shared object that is no extension module at all.
    EXPECT_EQ(elf_module_init(FIXTURE_NO_GILSTATE), module_init::neither);
    EXPECT_EQ(elf_module_init("/nonexistent/x.so"), module_init::unreadable);
}
