# The ThreadSanitizer build (cmake -DFOCUS_TSAN=ON -DFOCUS_CUDA=OFF -DFOCUS_MPI=OFF; tools/test
# runs it): the library, the thread tests (tests/core/test_thread_safety.cpp and the thread pool's
# tests/backends/test_thread_pool.cpp, with the GPT of models/gpt compiled in) and the
# distributed suite without MPI (DDP's communication thread runs beside backward), rather than
# the whole suite. Any race ThreadSanitizer reports fails the test (halt_on_error; exit code
# 66). Test names end in _tsan: tools/test runs this build's tests in one CTest run with the
# other builds', and CTest keys test properties by name.
find_package(doctest REQUIRED)

# OpenBLAS is not instrumented: OPENBLAS_NUM_THREADS=1 keeps it from starting threads of its
# own (focus holds it to one thread anyway, core/threads.cpp), so every thread that touches
# focus's memory is one ThreadSanitizer sees. tsan.supp lists what remains to hide from
# uninstrumented libraries (never focus's own code).
set(FOCUS_TSAN_ENV
    "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${CMAKE_CURRENT_SOURCE_DIR}/tsan.supp"
    OPENBLAS_NUM_THREADS=1)

add_executable(focus_thread_tests main.cpp core/test_thread_safety.cpp backends/test_thread_pool.cpp
               ${PROJECT_SOURCE_DIR}/models/gpt/gpt.cpp)
target_link_libraries(focus_thread_tests PRIVATE focus::focus doctest::doctest)
target_include_directories(focus_thread_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(focus_thread_tests PRIVATE FOCUS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
if(FOCUS_NATIVE)
  target_compile_options(focus_thread_tests PRIVATE -march=native)
endif()
add_test(NAME thread_safety_tsan COMMAND focus_thread_tests --test-suite=thread_safety --no-version)
# The thread pool's tests (outside any suite), but for the forked child's: ThreadSanitizer
# does not support starting threads in the child of a multi-threaded process.
add_test(NAME thread_pool_tsan COMMAND focus_thread_tests --test-suite-exclude=?* "--test-case-exclude=*forked child*"
         --no-version)
set_tests_properties(thread_pool_tsan PROPERTIES FAIL_REGULAR_EXPRESSION "test cases: *0 \\|")
set_tests_properties(thread_safety_tsan thread_pool_tsan PROPERTIES TIMEOUT 900 ENVIRONMENT "${FOCUS_TSAN_ENV}")

# The distributed suite without MPI (world size 1; as the else() branch of tests/CMakeLists.txt).
if(NOT FOCUS_WITH_MPI)
  file(GLOB FOCUS_DIST_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/distributed/*.cpp)
  list(FILTER FOCUS_DIST_TEST_SOURCES EXCLUDE REGEX "/failures\\.cpp$")
  add_executable(focus_dist_tests ${FOCUS_DIST_TEST_SOURCES})
  target_link_libraries(focus_dist_tests PRIVATE focus::focus doctest::doctest)
  target_include_directories(focus_dist_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_definitions(focus_dist_tests PRIVATE FOCUS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  add_test(NAME distributed_local_tsan COMMAND focus_dist_tests)
  add_test(NAME distributed_no_mpi_error_tsan COMMAND ${CMAKE_COMMAND} -E env OMPI_COMM_WORLD_SIZE=2
           $<TARGET_FILE:focus_dist_tests>)
  set_tests_properties(distributed_no_mpi_error_tsan PROPERTIES WILL_FAIL ON)
  add_test(NAME distributed_no_mpi_message_tsan COMMAND ${CMAKE_COMMAND} -E env OMPI_COMM_WORLD_SIZE=2
           $<TARGET_FILE:focus_dist_tests>)
  set_tests_properties(distributed_no_mpi_message_tsan PROPERTIES PASS_REGULAR_EXPRESSION
                       "asks for 2 ranks, but this focus was built without MPI")
  set_tests_properties(distributed_local_tsan distributed_no_mpi_error_tsan distributed_no_mpi_message_tsan
                       PROPERTIES TIMEOUT 900 ENVIRONMENT "${FOCUS_TSAN_ENV}")
endif()
