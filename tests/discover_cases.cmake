# Run after test_gradcheck is built: registers one gradcheck.<name> test per case the binary lists
# (test_gradcheck --list), and reference.<name> for cases of families with a PyTorch fixture. ctest includes
# the file written here, so every case that exists runs, whatever its name, and no other.
# In: GRADCHECK, REFERENCE (executables), FIXTURES (directory), REF_FAMILIES (comma-separated), OUT (file).
cmake_minimum_required(VERSION 3.22)
string(REPLACE "," ";" REF_FAMILIES "${REF_FAMILIES}")
execute_process(COMMAND ${GRADCHECK} --list OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${GRADCHECK} --list failed (${rc})")
endif()
string(REPLACE "\n" ";" lines "${listing}")
set(text "")
set(count 0)
foreach(line IN LISTS lines)
    if(line STREQUAL "")
        continue()
    endif()
    if(NOT line MATCHES "^([^ ]+) (.+)$")
        message(FATAL_ERROR "test_gradcheck --list: unreadable line '${line}'")
    endif()
    set(family ${CMAKE_MATCH_1})
    set(case ${CMAKE_MATCH_2})
    string(APPEND text "add_test([==[gradcheck.${case}]==] [==[${GRADCHECK}]==] [==[${case}]==])\n"
                       "set_tests_properties([==[gradcheck.${case}]==] PROPERTIES LABELS gradcheck)\n")
    if(family IN_LIST REF_FAMILIES)
        string(APPEND text "add_test([==[reference.${case}]==] [==[${REFERENCE}]==] "
                           "[==[${FIXTURES}/${family}.ndfx]==] [==[${case}]==])\n"
                           "set_tests_properties([==[reference.${case}]==] PROPERTIES LABELS reference)\n")
    endif()
    math(EXPR count "${count} + 1")
endforeach()
if(count EQUAL 0)
    message(FATAL_ERROR "test_gradcheck --list names no case")
endif()
file(WRITE ${OUT} "${text}")
