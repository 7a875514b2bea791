#include "elf_imports.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

namespace pyinterp::app {
namespace {

// A read-only mapping of a whole file.
struct mapped_file {
    const unsigned char* data = nullptr;
    size_t size = 0;
    ~mapped_file() {
        if (data != nullptr) munmap(const_cast<unsigned char*>(data), size);
    }
};

template <class T>
bool read_at(const mapped_file& f, uint64_t off, T* out) {
    if (off > f.size || f.size - off < sizeof(T)) return false;
    std::memcpy(out, f.data + off, sizeof(T));
    return true;
}

// Sets in *found the bit of each of `symbols` that `name` (room bytes at
// most, not necessarily NUL-terminated within them) equals.
void match(const char* name, size_t room, const std::vector<std::string>& symbols, uint32_t* found) {
    size_t len = strnlen(name, room);
    for (size_t i = 0; i < symbols.size(); ++i)
        if (len == symbols[i].size() && std::memcmp(name, symbols[i].data(), len) == 0) *found |= uint32_t{1} << i;
}

// Scans the dynamic symbol table (SHT_DYNSYM and its string table) of an
// ELF file of one class for imports of `symbols`; every offset is
// bounds-checked.  False when the file does not parse.
template <class Ehdr, class Shdr, class Sym>
bool scan(const mapped_file& f, const std::vector<std::string>& symbols, uint32_t* found) {
    Ehdr eh;
    if (!read_at(f, 0, &eh) || eh.e_shentsize != sizeof(Shdr)) return false;
    for (unsigned i = 0; i < eh.e_shnum; ++i) {
        Shdr sh;
        if (!read_at(f, eh.e_shoff + uint64_t(i) * sizeof(Shdr), &sh)) return false;
        if (sh.sh_type != SHT_DYNSYM || sh.sh_entsize != sizeof(Sym)) continue;
        Shdr strtab;
        if (sh.sh_link >= eh.e_shnum || !read_at(f, eh.e_shoff + uint64_t(sh.sh_link) * sizeof(Shdr), &strtab) ||
            strtab.sh_offset > f.size || f.size - strtab.sh_offset < strtab.sh_size)
            return false;
        const char* names = reinterpret_cast<const char*>(f.data + strtab.sh_offset);
        uint64_t count = sh.sh_size / sizeof(Sym);
        for (uint64_t k = 0; k < count; ++k) {
            Sym s;
            if (!read_at(f, sh.sh_offset + k * sizeof(Sym), &s)) return false;
            if (s.st_shndx != SHN_UNDEF || s.st_name >= strtab.sh_size) continue;
            match(names + s.st_name, strtab.sh_size - s.st_name, symbols, found);
        }
        return true;
    }
    return true;  // no dynamic symbols at all
}

bool scan_file(int fd, size_t size, const std::vector<std::string>& symbols, uint32_t* found) {
    if (size < EI_NIDENT) return false;
    mapped_file f;
    void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return false;
    f.data = static_cast<const unsigned char*>(p);
    f.size = size;
    if (std::memcmp(f.data, ELFMAG, SELFMAG) != 0 || f.data[EI_DATA] != ELFDATA2LSB) return false;
    if (f.data[EI_CLASS] == ELFCLASS64) return scan<Elf64_Ehdr, Elf64_Shdr, Elf64_Sym>(f, symbols, found);
    if (f.data[EI_CLASS] == ELFCLASS32) return scan<Elf32_Ehdr, Elf32_Shdr, Elf32_Sym>(f, symbols, found);
    return false;
}

// Cached by path and the question (the symbols, joined).
struct cache_key {
    std::string path, question;
    bool operator<(const cache_key& o) const { return std::tie(path, question) < std::tie(o.path, o.question); }
};
struct cache_entry {
    off_t size;
    struct timespec mtime;
    bool readable;
    uint32_t found;
};

std::mutex cache_mu;
std::map<cache_key, cache_entry>& cache() {
    static auto* m = new std::map<cache_key, cache_entry>;  // never destroyed: used from any thread
    return *m;
}

}  // namespace

bool elf_imports_symbols(const std::string& path, const std::vector<std::string>& symbols, uint32_t* found) {
    *found = 0;
    if (symbols.size() > 32) return false;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return false;
    }
    cache_key key{path, {}};
    for (const std::string& sym : symbols) key.question += sym + '\n';
    {
        std::lock_guard<std::mutex> lk(cache_mu);
        auto it = cache().find(key);
        if (it != cache().end() && it->second.size == st.st_size && it->second.mtime.tv_sec == st.st_mtim.tv_sec &&
            it->second.mtime.tv_nsec == st.st_mtim.tv_nsec) {
            close(fd);
            *found = it->second.found;
            return it->second.readable;
        }
    }
    uint32_t bits = 0;
    bool readable = scan_file(fd, static_cast<size_t>(st.st_size), symbols, &bits);
    close(fd);
    if (!readable) bits = 0;
    std::lock_guard<std::mutex> lk(cache_mu);
    cache()[key] = cache_entry{st.st_size, st.st_mtim, readable, bits};
    *found = bits;
    return readable;
}

elf_answer elf_imports_symbol(const std::string& path, const std::string& symbol) {
    uint32_t found = 0;
    if (!elf_imports_symbols(path, {symbol}, &found)) return elf_answer::unreadable;
    return found != 0 ? elf_answer::imports : elf_answer::not_imported;
}

module_init elf_module_init(const std::string& path) {
    static const std::vector<std::string> k_symbols = {"PyModuleDef_Init", "PyModule_Create2"};
    uint32_t found = 0;
    if (!elf_imports_symbols(path, k_symbols, &found)) return module_init::unreadable;
    switch (found) {
        case 1: return module_init::multi_phase;
        case 2: return module_init::single_phase;
        case 3: return module_init::both;
        default: return module_init::neither;
    }
}

const char* module_init_name(module_init k) noexcept {
    switch (k) {
        case module_init::multi_phase: return "multi-phase";
        case module_init::single_phase: return "single-phase";
        case module_init::both: return "both";
        case module_init::neither: return "neither";
        case module_init::unreadable: break;
    }
    return "unreadable";
}

}  // namespace pyinterp::app
