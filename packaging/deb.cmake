# `cmake --build <build> --target package`: libapache2-mod-pyinterp_<version>_<arch>.deb
# (CPack's DEB generator), for the Debian or Ubuntu release it is built on.
#
# It holds the components httpd-module (mod_pyinterp.so, pyinterp.load,
# pyinterp.conf, the documentation) and command (the `pyinterp` command), and
# not the dispatch library's development files (dispatch-dev) or its `pyinterp`
# extension module for a plain python3 (python-module): the module links the
# library statically and registers `pyinterp` in its own interpreters, so a
# server needs neither.
#
# Depends: what dpkg-shlibdeps finds in the binaries (libpython3.X, libapr,
# libevent, libstdc++...), Debian's module ABI (apache2-api-<MMN>, provided by
# apache2-bin) and the python3 of the Python it was built for (python3 (>= 3.X~),
# python3 (<< 3.Y)): applications import that python3's packages (python3-flask
# and the like).  Recommends apache2, whose a2enmod the maintainer scripts use.
# Conflicts with nothing: mod_wsgi can be installed beside it (docs/install.md).
#
# Made only for the system's Python without sanitizers: a package for a Python
# under PYINTERP_PYTHON_ROOT would depend on files no Debian package provides.
if(NOT TARGET mod_pyinterp)
  return()
endif()
if(PYINTERP_PYTHON_ROOT OR PYINTERP_SANITIZE)
  message(STATUS "pyinterp: no .deb package target (built against PYINTERP_PYTHON_ROOT or with sanitizers)")
  return()
endif()
find_program(PYINTERP_DPKG dpkg)
if(NOT PYINTERP_DPKG)
  message(STATUS "pyinterp: no .deb package target (dpkg not found)")
  return()
endif()

set(PYINTERP_DEB_MAINTAINER "pyinterp developers <pyinterp@localhost>" CACHE STRING
    "The Maintainer field of the .deb")

math(EXPR _pyinterp_next_minor "${Python3_VERSION_MINOR} + 1")
set(_pyinterp_py "${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}")
set(_pyinterp_py_next "${Python3_VERSION_MAJOR}.${_pyinterp_next_minor}")

# Files under /etc are the administrator's: dpkg keeps their changes on
# upgrade and leaves them on remove (gone on purge).
set(_pyinterp_deb_control ${PROJECT_BINARY_DIR}/packaging/deb)
file(MAKE_DIRECTORY ${_pyinterp_deb_control})
set(_pyinterp_conffiles "")
if(PYINTERP_INSTALL_HTTPD_CONFDIR MATCHES "^/etc/")
  string(APPEND _pyinterp_conffiles "${PYINTERP_INSTALL_HTTPD_CONFDIR}/pyinterp.load\n"
                                    "${PYINTERP_INSTALL_HTTPD_CONFDIR}/pyinterp.conf\n")
endif()
file(WRITE ${_pyinterp_deb_control}/conffiles "${_pyinterp_conffiles}")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME libapache2-mod-pyinterp)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Python WSGI applications in Apache httpd's own threads")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "mod_pyinterp serves WSGI (PEP 3333) applications from httpd's worker
threads, each in the CPython interpreter its configuration names (an
application group), with the system's Python ${_pyinterp_py}.  Enable it with
a2enmod pyinterp and map applications with PyInterpScriptAlias.
.
Also the pyinterp command: 'pyinterp serve app.wsgi' runs an application
under a private httpd on 127.0.0.1, 'pyinterp doctor app.wsgi' tells whether
it can run in a subinterpreter.")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${PYINTERP_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION httpd)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "apache2-api-${PYINTERP_HTTPD_MMN}, apache2-bin (>= 2.4.16), python3 (>= ${_pyinterp_py}~), python3 (<< ${_pyinterp_py_next})")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS apache2)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/deb/postinst
    ${PROJECT_SOURCE_DIR}/packaging/deb/prerm
    ${PROJECT_SOURCE_DIR}/packaging/deb/postrm
    ${_pyinterp_deb_control}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# One package of two components.
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_COMPONENTS_ALL httpd-module command)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
include(CPack)
