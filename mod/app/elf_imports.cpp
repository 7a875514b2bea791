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

// Scans the dynamic symbol table (SHT_DYNSYM and its string table) of an
// ELF file of one class; every offset is bounds-checked.
template <class Ehdr, class Shdr, class Sym>
elf_answer scan(const mapped_file& f, const std::string& symbol) {
    Ehdr eh;
    if (!read_at(f, 0, &eh) || eh.e_shentsize != sizeof(Shdr)) return elf_answer::unreadable;
    for (unsigned i = 0; i < eh.e_shnum; ++i) {
        Shdr sh;
        if (!read_at(f, eh.e_shoff + uint64_t(i) * sizeof(Shdr), &sh)) return elf_answer::unreadable;
        if (sh.sh_type != SHT_DYNSYM || sh.sh_entsize != sizeof(Sym)) continue;
        Shdr strtab;
        if (sh.sh_link >= eh.e_shnum || !read_at(f, eh.e_shoff + uint64_t(sh.sh_link) * sizeof(Shdr), &strtab) ||
            strtab.sh_offset > f.size || f.size - strtab.sh_offset < strtab.sh_size)
            return elf_answer::unreadable;
        const char* names = reinterpret_cast<const char*>(f.data + strtab.sh_offset);
        uint64_t count = sh.sh_size / sizeof(Sym);
        for (uint64_t k = 0; k < count; ++k) {
            Sym s;
            if (!read_at(f, sh.sh_offset + k * sizeof(Sym), &s)) return elf_answer::unreadable;
            if (s.st_shndx != SHN_UNDEF || s.st_name >= strtab.sh_size) continue;
            size_t room = strtab.sh_size - s.st_name;
            if (strnlen(names + s.st_name, room) == symbol.size() &&
                std::memcmp(names + s.st_name, symbol.data(), symbol.size()) == 0)
                return elf_answer::imports;
        }
        return elf_answer::not_imported;
    }
    return elf_answer::not_imported;  // no dynamic symbols at all
}

elf_answer scan_file(int fd, size_t size, const std::string& symbol) {
    if (size < EI_NIDENT) return elf_answer::unreadable;
    mapped_file f;
    void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return elf_answer::unreadable;
    f.data = static_cast<const unsigned char*>(p);
    f.size = size;
    if (std::memcmp(f.data, ELFMAG, SELFMAG) != 0 || f.data[EI_DATA] != ELFDATA2LSB) return elf_answer::unreadable;
    if (f.data[EI_CLASS] == ELFCLASS64) return scan<Elf64_Ehdr, Elf64_Shdr, Elf64_Sym>(f, symbol);
    if (f.data[EI_CLASS] == ELFCLASS32) return scan<Elf32_Ehdr, Elf32_Shdr, Elf32_Sym>(f, symbol);
    return elf_answer::unreadable;
}

struct cache_key {
    std::string path, symbol;
    bool operator<(const cache_key& o) const { return std::tie(path, symbol) < std::tie(o.path, o.symbol); }
};
struct cache_entry {
    off_t size;
    struct timespec mtime;
    elf_answer answer;
};

std::mutex cache_mu;
std::map<cache_key, cache_entry>& cache() {
    static auto* m = new std::map<cache_key, cache_entry>;  // never destroyed: used from any thread
    return *m;
}

}  // namespace

elf_answer elf_imports_symbol(const std::string& path, const std::string& symbol) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return elf_answer::unreadable;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return elf_answer::unreadable;
    }
    cache_key key{path, symbol};
    {
        std::lock_guard<std::mutex> lk(cache_mu);
        auto it = cache().find(key);
        if (it != cache().end() && it->second.size == st.st_size && it->second.mtime.tv_sec == st.st_mtim.tv_sec &&
            it->second.mtime.tv_nsec == st.st_mtim.tv_nsec) {
            close(fd);
            return it->second.answer;
        }
    }
    elf_answer a = scan_file(fd, static_cast<size_t>(st.st_size), symbol);
    close(fd);
    std::lock_guard<std::mutex> lk(cache_mu);
    cache()[key] = cache_entry{st.st_size, st.st_mtim, a};
    return a;
}

}  // namespace pyinterp::app
