// The WSGI protocol's per-interpreter state (see wsgi_state.h).  Every
// function here runs with the GIL of the interpreter concerned held.
#include "wsgi_state.h"

#include <new>

#include "log_stream.h"
#include "wsgi_environ.h"
#include "wsgi_file_wrapper.h"
#include "wsgi_input.h"
#include "wsgi_start_response.h"

namespace pyinterp::mod {
namespace {

PyTypeObject* make_type(PyObject* module, PyType_Spec* spec) noexcept {
    return reinterpret_cast<PyTypeObject*>(PyType_FromModuleAndSpec(module, spec, nullptr));
}

// The heap types, then the strings every environ shares.
int init_state(PyObject* module, app::interp_state* base) noexcept {
    auto* st = new (std::nothrow) wsgi_state;
    if (st == nullptr) {
        PyErr_NoMemory();
        return -1;
    }
    base->protocol = st;
    st->input_type = make_type(module, &input_type_spec);
    st->log_type = st->input_type ? make_type(module, &log_type_spec) : nullptr;
    st->start_response_type = st->log_type ? make_type(module, &start_response_type_spec) : nullptr;
    st->file_wrapper_type = st->start_response_type ? make_type(module, &file_wrapper_type_spec) : nullptr;
    if (st->file_wrapper_type == nullptr) return -1;
    if (PyModule_AddObjectRef(module, "FileWrapper", reinterpret_cast<PyObject*>(st->file_wrapper_type)) < 0) return -1;
    st->wsgi_version = Py_BuildValue("(ii)", 1, 0);
    st->str_close = PyUnicode_InternFromString("close");
    st->environ_keys = new (std::nothrow) app::str_cache(app::str_cache::latin1);
    if (st->wsgi_version == nullptr || st->str_close == nullptr) return -1;
    if (st->environ_keys == nullptr) {
        PyErr_NoMemory();
        return -1;
    }
    return environ_init_keys(st) ? 0 : -1;
}

int traverse_state(app::interp_state* base, visitproc visit, void* arg) noexcept {
    wsgi_state* st = wsgi_state_of(base);
    if (st == nullptr) return 0;
    Py_VISIT(st->input_type);
    Py_VISIT(st->log_type);
    Py_VISIT(st->start_response_type);
    Py_VISIT(st->file_wrapper_type);
    Py_VISIT(st->wsgi_version);
    Py_VISIT(st->str_close);
    for (PyObject* key : st->environ_fixed) Py_VISIT(key);
    return 0;
}

void clear_state(app::interp_state* base) noexcept {
    wsgi_state* st = wsgi_state_of(base);
    if (st == nullptr) return;
    Py_CLEAR(st->input_type);
    Py_CLEAR(st->log_type);
    Py_CLEAR(st->start_response_type);
    Py_CLEAR(st->file_wrapper_type);
    Py_CLEAR(st->wsgi_version);
    Py_CLEAR(st->str_close);
    for (PyObject*& key : st->environ_fixed) Py_CLEAR(key);
    if (st->environ_keys != nullptr) st->environ_keys->clear();
}

void free_state(app::interp_state* base) noexcept {
    wsgi_state* st = wsgi_state_of(base);
    if (st == nullptr) return;
    delete st->environ_keys;
    delete st;
    base->protocol = nullptr;
}

}  // namespace

const app::protocol_state_ops wsgi_state_ops = {init_state, traverse_state, clear_state, free_state};

}  // namespace pyinterp::mod
