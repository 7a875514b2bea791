# Builds projects against an *installed* pyinterp, the ways its users do,
# and runs what they built.  Run by ctest (tests/CMakeLists.txt):
#
#   cmake -DBUILD_DIR=<pyinterp build> -DWORK_DIR=<scratch> -DPYTHON=<python>
#         -DC_COMPILER=<cc> -DCXX_COMPILER=<c++> -DPYTHON_DIR=<relative site dir>
#         -DLIB_DIR=<relative lib dir> -DSOURCE_ROOT=<pyinterp source> -P run.cmake
#
# 1. cmake --install into WORK_DIR/prefix (components dispatch-dev, python-module);
#    no installed file may name the source or build tree;
# 2. host/: find_package(pyinterp) + pyinterp::dispatch (the static library);
# 3. extension/: find_package(pyinterp COMPONENTS headers) + pyinterp::headers, a C
#    extension (the ticker example) that reaches the library through the capsule;
# 4. the host runs the extension in a subinterpreter;
# 5. the same host built in-tree with add_subdirectory(dispatch) (no install);
# 6. the same host built with the compiler and `pkg-config pyinterp-dispatch` alone;
# 7. a plain python imports the installed `pyinterp` module and the extension.
cmake_minimum_required(VERSION 3.22)

foreach(var BUILD_DIR WORK_DIR PYTHON C_COMPILER CXX_COMPILER PYTHON_DIR LIB_DIR SOURCE_ROOT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()
set(here ${CMAKE_CURRENT_LIST_DIR})
set(prefix ${WORK_DIR}/prefix)

function(step what)
  message(STATUS "consumer: ${what}")
endfunction()

# run(<output var> COMMAND ...): runs it, fails on a non-zero exit, returns stdout.
function(run out)
  execute_process(${ARGN} OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " cmd)
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n--- stdout\n${stdout}\n--- stderr\n${stderr}")
  endif()
  set(${out} "${stdout}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})

step("install into ${prefix}")
foreach(component dispatch-dev python-module)
  run(ignored COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} --component ${component})
endforeach()
file(GLOB_RECURSE installed RELATIVE ${prefix} ${prefix}/*)
list(SORT installed)
message(STATUS "consumer: installed ${installed}")
foreach(expected include/pyinterp/dispatch.h include/pyinterp/dispatch.hpp include/pyinterp/loop.h
                 include/pyinterp/module.h ${LIB_DIR}/libpyinterp-dispatch.a
                 ${LIB_DIR}/cmake/pyinterp/pyinterpConfig.cmake
                 ${LIB_DIR}/cmake/pyinterp/pyinterpConfigVersion.cmake
                 ${LIB_DIR}/pkgconfig/pyinterp-dispatch.pc)
  if(NOT EXISTS ${prefix}/${expected})
    message(FATAL_ERROR "not installed: ${expected}")
  endif()
endforeach()
file(GLOB python_module ${prefix}/${PYTHON_DIR}/pyinterp.*.so)
if(NOT python_module)
  message(FATAL_ERROR "the pyinterp module is not in ${prefix}/${PYTHON_DIR}")
endif()
foreach(f IN LISTS installed)
  if(f MATCHES "\\.(cmake|pc|h|hpp)$")
    file(READ ${prefix}/${f} text)
    foreach(tree ${SOURCE_ROOT} ${BUILD_DIR})
      string(FIND "${text}" "${tree}" at)
      if(NOT at EQUAL -1)
        message(FATAL_ERROR "${f} names ${tree}")
      endif()
    endforeach()
  endif()
endforeach()

set(compilers -DCMAKE_C_COMPILER=${C_COMPILER} -DCMAKE_CXX_COMPILER=${CXX_COMPILER})

step("extension (pyinterp::headers, the capsule)")
run(ignored COMMAND ${CMAKE_COMMAND} -S ${here}/extension -B ${WORK_DIR}/extension ${compilers}
            -DCMAKE_PREFIX_PATH=${prefix} -DPython3_EXECUTABLE=${PYTHON}
            -DTICKER_SOURCE=${SOURCE_ROOT}/dispatch/examples/ticker.c)
run(ignored COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/extension)
file(GLOB ticker_module ${WORK_DIR}/extension/ticker.*.so)
if(NOT ticker_module)
  message(FATAL_ERROR "no ticker module in ${WORK_DIR}/extension")
endif()
run(out COMMAND nm -D --undefined-only ${ticker_module})
if(out MATCHES "pyinterp_")
  message(FATAL_ERROR "the capsule extension links pyinterp symbols:\n${out}")
endif()

step("host (pyinterp::dispatch, the static library)")
run(out COMMAND ${CMAKE_COMMAND} -S ${here}/host -B ${WORK_DIR}/host ${compilers} -DCMAKE_PREFIX_PATH=${prefix})
string(REGEX MATCH "consumer: pyinterp [^\n]*" found "${out}")
message(STATUS "${found}")
run(ignored COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/host)
run(out COMMAND ${WORK_DIR}/host/host ${WORK_DIR}/extension)
if(NOT out MATCHES "host: [0-9]+ ticks in consumer, none lost")
  message(FATAL_ERROR "host printed: ${out}")
endif()
string(STRIP "${out}" out)
message(STATUS "consumer: ${out}")

step("host with add_subdirectory(dispatch), no install")
run(ignored COMMAND ${CMAKE_COMMAND} -S ${here}/subdirectory -B ${WORK_DIR}/subdirectory ${compilers}
            -DPython3_EXECUTABLE=${PYTHON} -DPYINTERP_DISPATCH_DIR=${SOURCE_ROOT}/dispatch)
run(ignored COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/subdirectory --target host -j 2)
run(out COMMAND ${WORK_DIR}/subdirectory/host ${WORK_DIR}/extension)
if(NOT out MATCHES "host: [0-9]+ ticks in consumer, none lost")
  message(FATAL_ERROR "subdirectory host printed: ${out}")
endif()

step("host built with pkg-config pyinterp-dispatch")
run(pyconf COMMAND ${PYTHON} -c "import sysconfig\nfor v in 'LIBPC', 'LIBDIR': print(sysconfig.get_config_var(v))")
string(REPLACE "\n" ";" pyconf "${pyconf}")
list(GET pyconf 0 python_pc_dir)
list(GET pyconf 1 python_lib_dir)
set(pc_env PKG_CONFIG_PATH=${prefix}/${LIB_DIR}/pkgconfig:${python_pc_dir})
run(flags COMMAND ${CMAKE_COMMAND} -E env ${pc_env} pkg-config --cflags --libs pyinterp-dispatch)
separate_arguments(flags UNIX_COMMAND "${flags}")
run(ignored COMMAND ${C_COMPILER} ${here}/host.c ${flags} -o ${WORK_DIR}/host-pc)
run(out COMMAND ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${python_lib_dir} ${WORK_DIR}/host-pc ${WORK_DIR}/extension)
if(NOT out MATCHES "host: [0-9]+ ticks in consumer, none lost")
  message(FATAL_ERROR "host-pc printed: ${out}")
endif()

step("plain python: the installed pyinterp module and the extension")
run(out COMMAND ${CMAKE_COMMAND} -E env PYTHONPATH=${prefix}/${PYTHON_DIR}:${WORK_DIR}/extension PYTHONDONTWRITEBYTECODE=1
            ${PYTHON} -c [=[
import os, sys, threading, time
import pyinterp, ticker
assert os.path.dirname(pyinterp.__file__) == sys.path[1], (pyinterp.__file__, sys.path)
assert pyinterp.interpreter() == ("main", 0, False), pyinterp.interpreter()
calls = []
t = ticker.start(lambda n: calls.append((n, threading.get_ident())), 0.002)
deadline = time.monotonic() + 30
while len(calls) < 5 and time.monotonic() < deadline:
    time.sleep(0.001)
t.stop()
assert [n for n, _ in calls] == list(range(1, len(calls) + 1)) and len(calls) >= 5, calls
assert threading.get_ident() not in {i for _, i in calls}, calls
print("python: %d ticks from %s" % (len(calls), os.path.basename(pyinterp.__file__)))
]=])
string(STRIP "${out}" out)
message(STATUS "consumer: ${out}")
