# commit.cmake - writes the header that names the commit the walls command
# is built from: `git describe --always --dirty` of the source tree, or
# "unknown" where there is no git, or where the source tree is not the top
# of a git checkout (a build from a tarball, even one unpacked inside some
# other repository). Run at every build; the header is rewritten only when
# the name changes, so an unchanged tree recompiles nothing.
#
#   cmake -DSOURCE_DIR=DIR -DOUTPUT=FILE [-DGIT=PATH] -P commit.cmake
cmake_minimum_required(VERSION 3.25)

set(commit "unknown")
if(GIT AND EXISTS "${GIT}")
  execute_process(COMMAND "${GIT}" rev-parse --show-toplevel
    WORKING_DIRECTORY "${SOURCE_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE top
    ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  file(REAL_PATH "${SOURCE_DIR}" source_real)
  if(rc EQUAL 0)
    file(REAL_PATH "${top}" top_real)
  endif()
  if(rc EQUAL 0 AND top_real STREQUAL source_real)
    execute_process(COMMAND "${GIT}" describe --always --dirty
      WORKING_DIRECTORY "${SOURCE_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE name
      ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    # Only characters that need no escaping in a C string.
    if(rc EQUAL 0 AND name MATCHES "^[0-9A-Za-z._/+-]+$")
      set(commit "${name}")
    endif()
  endif()
endif()

set(text "/* Written at build time by cmake/commit.cmake. */\n#define WALLS_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUTPUT}" "${text}")
endif()
