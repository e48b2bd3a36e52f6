# Compiles tests/compile_fail/forgotten_co_await.cpp with -DCONET_FORGET=${FORGET} under
# -Werror (cmake -DCXX=... -DCXX_ID=GNU|Clang -DSOURCE=... -DINCLUDE=... -DFORGET=N -P
# check.cmake).
# FORGET=0 awaits everything: the compile must succeed, which shows the snippets are sound.
# FORGET=N drops the N-th co_await, FORGET=-1 every one: the compile must fail with conet's
# [[nodiscard]] message on exactly the lines whose co_await was dropped, and with no other
# error, so that no kind of awaitable can slip through and no other error can pass for one.
cmake_minimum_required(VERSION 3.24)
set(flags "")
if(CXX_ID MATCHES "Clang")
  set(flags -ferror-limit=0) # Clang stops at 20 errors; GCC has no limit
endif()
execute_process(
  COMMAND "${CXX}" ${flags} -std=c++20 -Wall -Wextra -Wpedantic -Werror -fsyntax-only "-I${INCLUDE}"
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

# The lines that lose their co_await: the one after each "#if CONET_FORGET == N" chosen.
file(STRINGS "${SOURCE}" source_lines)
set(expected "")
set(line_number 0)
set(take_next FALSE)
foreach(text IN LISTS source_lines)
  math(EXPR line_number "${line_number} + 1")
  if(take_next)
    string(STRIP "${text}" statement)
    list(APPEND expected "${line_number}")
    set(statement_${line_number} "${statement}")
    set(take_next FALSE)
  endif()
  if(text MATCHES "^#if CONET_FORGET == ([0-9]+)")
    if(FORGET EQUAL -1 OR FORGET EQUAL CMAKE_MATCH_1)
      set(take_next TRUE)
    endif()
  endif()
endforeach()

# Semicolons would split CMake's lists (conet's message has one).
string(REPLACE ";" "," output "${output}")
string(REGEX MATCHALL "error:[^\n]*" errors "${output}")
get_filename_component(source_name "${SOURCE}" NAME)
string(REGEX MATCHALL
  "${source_name}:[0-9]+:[0-9]+: error:[^\n]*(conet: co_await this operation|conet: a task does nothing until)"
  ours "${output}")
set(reported "")
foreach(hit IN LISTS ours)
  string(REGEX MATCH ":([0-9]+):[0-9]+: error:" ignored "${hit}")
  list(APPEND reported "${CMAKE_MATCH_1}")
endforeach()
list(LENGTH errors error_count)
list(LENGTH ours our_count)
list(LENGTH expected expected_count)
set(missed "")
foreach(line IN LISTS expected)
  if(NOT line IN_LIST reported)
    string(APPEND missed "\n  line ${line}: ${statement_${line}}")
  endif()
endforeach()
if(missed)
  message(FATAL_ERROR "a forgotten co_await compiled without conet's error:${missed}\n${output}")
endif()
if(NOT error_count EQUAL expected_count OR NOT our_count EQUAL expected_count)
  message(FATAL_ERROR "expected ${expected_count} errors, conet's nodiscard message on each "
                      "forgotten co_await; got ${error_count}:\n${output}")
endif()
message(STATUS "${expected_count} forgotten co_await(s), each a compile error with conet's message")
