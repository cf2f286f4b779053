# ctest driver of one exercise: the shipped blank must fail its check with the expected advice, and the
# reference solution must pass.  cmake -DNANODIFF=... -DNAME=... -DDIR=... -DEXPECT=regex -P run_exercise.cmake
execute_process(COMMAND ${NANODIFF} exercise check ${NAME} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "blank:\n${out}${err}")
if(rc EQUAL 0)
    message(FATAL_ERROR "the shipped blank of ${NAME} passes its check")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
    message(FATAL_ERROR "the blank's failure does not say what is wrong (expected to match: ${EXPECT})")
endif()
execute_process(COMMAND ${NANODIFF} exercise check ${NAME} ${DIR}/solutions/${NAME}.c RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "solution:\n${out}${err}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "PASS: exercise ${NAME}")
    message(FATAL_ERROR "the reference solution of ${NAME} fails its check")
endif()
