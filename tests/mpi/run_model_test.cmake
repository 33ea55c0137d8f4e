# `mpirun -np NP porta run --expert-parallel NP` gives the tokens of one process, on the reference
# backend (bit-identical layers) and on cpu, with the contiguous placement and with an EPLB
# placement with replicas computed from a load that `porta run --record-expert-load` recorded.
# Variables: PORTA (the program), MPIRUN (mpirun and its options, a ;-list), NP, WORK_DIR,
# BACKENDS (a ;-list).
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(model ${WORK_DIR}/tiny-v3)

function(run_checked out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  TIMEOUT 60)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

function(tokens_of out_var text)
  string(REGEX MATCH "\ntokens: [0-9 ]*" line "\n${text}")
  if(line STREQUAL "")
    message(FATAL_ERROR "no 'tokens:' line in:\n${text}")
  endif()
  set(${out_var} "${line}" PARENT_SCOPE)
endfunction()

run_checked(ignored ${PORTA} gen-checkpoint --kind deepseek_v3 --out ${model} --seed 3)
set(args --model ${model} --prompt-ids 5,17,3,9,21,8,2 --max-new-tokens 5)

foreach(backend ${BACKENDS})
  run_checked(single ${PORTA} run ${args} --backend ${backend}
              --record-expert-load ${WORK_DIR}/load.json)
  tokens_of(expected "${single}")
  run_checked(eplb ${PORTA} eplb --load ${WORK_DIR}/load.json --ranks ${NP} --replicas ${NP}
              --out ${WORK_DIR}/placement.json)
  foreach(placement contiguous replicas)
    set(extra "")
    if(placement STREQUAL "replicas")
      set(extra --placement ${WORK_DIR}/placement.json)
    endif()
    run_checked(parallel ${MPIRUN} -np ${NP} ${PORTA} run ${args} --backend ${backend}
                --expert-parallel ${NP} ${extra})
    tokens_of(got "${parallel}")
    if(NOT got STREQUAL expected)
      message(FATAL_ERROR "${backend}, ${NP} ranks, ${placement}: ${got} but one process gives "
                          "${expected}\n${parallel}")
    endif()
    message(STATUS "${backend}, ${NP} ranks, ${placement}: ${got} as in one process")
  endforeach()
endforeach()
