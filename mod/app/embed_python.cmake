# Turns a Python source file into a C++ string constant, so the file stays
# a real .py (read, linted and imported by tests) and the binary carries it.
#   cmake -DINPUT=hook.py -DOUTPUT=hook.inc -DNAME=k_hook_source -P embed_python.cmake
file(READ "${INPUT}" source)
string(FIND "${source}" ")PYSRC\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw string delimiter )PYSRC\"")
endif()
file(WRITE "${OUTPUT}.tmp" "// Generated from ${INPUT} by embed_python.cmake; do not edit.\nconstexpr const char* ${NAME} = R\"PYSRC(${source})PYSRC\";\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
