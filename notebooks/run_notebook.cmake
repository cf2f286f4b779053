# ctest driver of one notebook program: runs it with --quick and checks that each expected figure was written
# as a PNG (its signature), so a program that exits 0 without its figures fails.
# cmake -DPROGRAM=... -DOUT=... -DFIGURES="a.png;b.png" -P run_notebook.cmake
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${PROGRAM} --quick --out ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${PROGRAM} --quick exited with ${rc}")
endif()
foreach(figure ${FIGURES})
    if(NOT EXISTS ${OUT}/${figure})
        message(FATAL_ERROR "${PROGRAM} --quick did not write ${figure}")
    endif()
    file(READ ${OUT}/${figure} signature LIMIT 8 HEX)
    if(NOT signature STREQUAL "89504e470d0a1a0a")
        message(FATAL_ERROR "${OUT}/${figure} is not a PNG file (starts with ${signature})")
    endif()
endforeach()
message(STATUS "${PROGRAM}: every figure written (${FIGURES})")
