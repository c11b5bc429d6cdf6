# warnings.cmake - compiles every C file of the build again as two other
# configurations would, and fails on any warning: GCC at -O3 (a Release
# build), whose optimizer finds things -O2 does not, and clang, whose
# analyses differ from GCC's. The flags are the build's own, read from its
# compile_commands.json; only the compiler and the optimization change,
# and nothing is written.
#
#   cmake -DBUILD_DIR=DIR -DGCC=PATH -DCLANG=PATH -P warnings.cmake
cmake_minimum_required(VERSION 3.25)

foreach(tool GCC CLANG)
  if(NOT ${tool} OR NOT EXISTS "${${tool}}")
    message(STATUS "warnings: skipped: ${tool} not found (Debian: gcc, clang)")
    return()
  endif()
endforeach()
set(commands "${BUILD_DIR}/compile_commands.json")
if(NOT EXISTS "${commands}")
  message(STATUS "warnings: skipped: no ${commands} (the generator does not write it)")
  return()
endif()

file(READ "${commands}" json)
string(JSON count LENGTH "${json}")
math(EXPR last "${count} - 1")
set(seen "")
set(failed 0)
set(checked 0)
foreach(i RANGE ${last})
  string(JSON source GET "${json}" ${i} file)
  # The shared and the static library compile the same sources.
  if(source IN_LIST seen)
    continue()
  endif()
  list(APPEND seen "${source}")
  string(JSON dir GET "${json}" ${i} directory)
  string(JSON command GET "${json}" ${i} command)
  separate_arguments(args UNIX_COMMAND "${command}")
  list(POP_FRONT args)
  # Keep the build's flags and the source; drop the compiler, the output,
  # the optimization and the debug information.
  set(flags "")
  set(drop_next FALSE)
  foreach(arg IN LISTS args)
    if(drop_next)
      set(drop_next FALSE)
    elseif(arg STREQUAL "-o")
      set(drop_next TRUE)
    elseif(NOT arg MATCHES "^-(O.*|g|c)$")
      list(APPEND flags "${arg}")
    endif()
  endforeach()
  foreach(compiler GCC CLANG)
    if(compiler STREQUAL "GCC")
      set(run "${GCC}" -O3 -DNDEBUG -Werror ${flags} -c -o /dev/null)
    else()
      set(run "${CLANG}" -fsyntax-only -Werror ${flags})
    endif()
    execute_process(COMMAND ${run} WORKING_DIRECTORY "${dir}"
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
    math(EXPR checked "${checked} + 1")
    if(NOT rc EQUAL 0 OR NOT out STREQUAL "")
      message("warnings: ${compiler}: ${source}:\n${out}")
      math(EXPR failed "${failed} + 1")
    endif()
  endforeach()
endforeach()

list(LENGTH seen files)
if(failed)
  message(FATAL_ERROR "warnings: ${failed} of ${checked} compilations warned or failed")
endif()
message(STATUS "warnings: ${files} files, ${checked} compilations, no warning")
