# Compiles tests/compile_fail/forgotten_co_await.cpp with -DCONET_FORGET=${FORGET} under
# -Werror (cmake -DCXX=... -DSOURCE=... -DINCLUDE=... -DFORGET=N -P check.cmake).
# FORGET=0 awaits everything: the compile must succeed, which shows the snippets are sound.
# FORGET=N drops one co_await: the compile must fail, with exactly one error, and that one
# conet's [[nodiscard]] message: any other error would make the test pass for a wrong reason.
execute_process(
  COMMAND "${CXX}" -std=c++20 -Wall -Wextra -Wpedantic -Werror -fsyntax-only "-I${INCLUDE}"
          "-DCONET_FORGET=${FORGET}" "${SOURCE}"
  RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(FORGET EQUAL 0)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "with every co_await in place the snippets must compile:\n${output}")
  endif()
  message(STATUS "every co_await in place: compiles")
  return()
endif()
if(status EQUAL 0)
  message(FATAL_ERROR "step ${FORGET} forgets its co_await, yet it compiled without an error")
endif()
# Semicolons would split CMake's lists (conet's message has one).
string(REPLACE ";" "," output "${output}")
string(REGEX MATCHALL "error:[^\n]*" errors "${output}")
string(REGEX MATCHALL
  "error:[^\n]*(conet: co_await this operation|conet: a task does nothing until)[^\n]*"
  ours "${output}")
list(LENGTH errors error_count)
list(LENGTH ours our_count)
if(NOT error_count EQUAL 1 OR NOT our_count EQUAL 1)
  message(FATAL_ERROR
    "expected one error, conet's nodiscard message; got ${error_count} errors:\n${output}")
endif()
message(STATUS "step ${FORGET}: ${ours}")
