# Registers one CTest test per doctest test suite found in the test sources
# (TEST_SUITE("name")), plus one for test cases outside any suite. Suites whose name
# starts with "parity" need the PyTorch reference files: they require the fixture
# `parity` (see tests/CMakeLists.txt) and get FOCUS_PARITY_DIR=parity_dir.
function(focus_add_doctest_suites target parity_dir)
  get_target_property(srcs ${target} SOURCES)
  set(suites "")
  foreach(src IN LISTS srcs)
    file(STRINGS ${src} lines REGEX "TEST_SUITE\\(\"[^\"]+\"\\)")
    foreach(line IN LISTS lines)
      string(REGEX MATCH "TEST_SUITE\\(\"([^\"]+)\"\\)" _ ${line})
      list(APPEND suites ${CMAKE_MATCH_1})
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES suites)
  foreach(suite IN LISTS suites)
    add_test(NAME ${suite} COMMAND ${target} --test-suite=${suite} --no-version)
    set_tests_properties(${suite} PROPERTIES TIMEOUT 900)
    if(suite MATCHES "^parity")
      set_tests_properties(${suite} PROPERTIES FIXTURES_REQUIRED parity
                                               ENVIRONMENT "FOCUS_PARITY_DIR=${parity_dir}")
    endif()
  endforeach()
  # Test cases outside any suite have the suite name "", which `*` matches too: exclude only
  # the named suites (`?*`: one character or more).
  add_test(NAME unsuited COMMAND ${target} --test-suite-exclude=?* --no-version)
endfunction()
