# Owns: the include rule between the agent's layers (core <- output <- runtime <- frontend <- daemon,
#       core <- etcd <- runtime)
# Runs: at configure time (included from CMakeLists.txt) and as the CTest layering_includes_point_inward (-P).
#
# The link lines alone do not enforce the rule: a header-only library (Asio, spdlog) or a header of an outer
# layer compiles into an inner one without a link error. So every #include in agent/ is read and checked here.
# Script mode: cmake -DSIDECAR_ROOT=<dir with agent/> -P cmake/LayerCheck.cmake; exits non-zero naming file:line.

# "<dir>|<regex of forbidden include targets>|<why>": one rule a line.
set(SIDECAR_LAYER_RULES
  "agent/core|^(boost/asio|asio|grpc|grpcpp|google/protobuf|spdlog|fmt)[/.]|.*\\.pb\\.h$|^agent/(output|etcd|runtime|frontend|daemon)/|core is pure and innermost: no Asio, gRPC, protobuf, spdlog, nor an outer layer"
  "agent/output|^agent/(etcd|runtime|frontend|daemon)/|output sees only core"
  "agent/etcd|^agent/(output|runtime|frontend|daemon)/|etcd sees only core"
  "agent/runtime|^agent/(frontend|daemon)/|runtime sees core, etcd and output; the front-ends are views of it"
  "agent/frontend|^agent/daemon/|the front-ends see the runtime, not the wiring")

# Sets `out_var` to "file:line: #include <x> (why)" to the list named `out_var` for every include that breaks a rule.
function(sidecar_check_layers root out_var)
  set(found)
  foreach(rule IN LISTS SIDECAR_LAYER_RULES)
    string(REPLACE "|" ";" parts "${rule}")
    list(POP_FRONT parts dir)
    list(POP_BACK parts why)
    list(JOIN parts "|" forbidden)
    file(GLOB_RECURSE sources "${root}/${dir}/*.cpp" "${root}/${dir}/*.hpp" "${root}/${dir}/*.h")
    list(SORT sources)
    foreach(source IN LISTS sources)
      file(STRINGS "${source}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
      foreach(include IN LISTS includes)
        string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[<\"]([^>\"]*)[>\"].*$" "\\1" target "${include}")
        if(NOT target MATCHES "${forbidden}")
          continue()
        endif()
        # file(STRINGS) gives no line numbers: count the newlines before the first occurrence.
        file(READ "${source}" text)
        string(FIND "${text}" "${include}" offset)
        string(SUBSTRING "${text}" 0 ${offset} before)
        string(REGEX REPLACE "[^\n]" "" newlines "${before}")
        string(LENGTH "${newlines}" line)
        math(EXPR line "${line} + 1")
        file(RELATIVE_PATH shown "${root}" "${source}")
        string(STRIP "${include}" written)
        list(APPEND found "${shown}:${line}: ${written} (${why})")
      endforeach()
    endforeach()
  endforeach()
  set(${out_var} "${found}" PARENT_SCOPE)
endfunction()

function(sidecar_enforce_layers root)
  sidecar_check_layers("${root}" violations)
  if(violations)
    list(JOIN violations "\n  " shown)
    message(FATAL_ERROR "layering: includes that point outward:\n  ${shown}")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE)
  if(NOT SIDECAR_ROOT)
    message(FATAL_ERROR "usage: cmake -DSIDECAR_ROOT=<source dir> -P LayerCheck.cmake")
  endif()
  sidecar_enforce_layers("${SIDECAR_ROOT}")
  message(STATUS "layering: every include in ${SIDECAR_ROOT}/agent points inward")
endif()
