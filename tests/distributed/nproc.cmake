# `focus train char-gpt --nproc 2` against one process with twice the per-rank batch: the
# same weights (float32, rtol 1e-5). Then a run of 2 processes stopped at step 5 and resumed
# by one process ends where the one-process run ends (resuming with another world size).
# A constant learning rate keeps the schedule independent of the step count.
set(common char-gpt -q --set dataset=synthetic --set dropout=0 --set eval_every=5 --set eval_batches=2
    --set sample_length=0 --set n_layer=2 --set n_embd=64 --set block_size=32 --set warmup_steps=0 --set lr=3e-3
    --set min_lr=3e-3 --set bias=false --overwrite)
# (No biases: the key projection's bias gets a gradient of pure rounding noise, which AdamW turns
# into steps of lr in either direction.)
function(run_focus what)
  execute_process(COMMAND ${FOCUS} train ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 300)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ok")
  set(last_out "${out}" PARENT_SCOPE)
endfunction()
function(compare a b)
  execute_process(COMMAND ${PYTHON} ${COMPARE} ${a} ${b} 1e-5 RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the weights differ: ${out}")
  endif()
  message(STATUS "${out}")
endfunction()

run_focus("one process, batch 16" ${common} --set batch_size=16 --set steps=10 --run-dir ${WORK}/one)
run_focus("2 processes, batch 8 each" ${common} --set batch_size=8 --set steps=10 --nproc 2 --run-dir ${WORK}/two)
if(NOT last_out MATCHES "2 processes x 1 thread, effective batch 2 x 8 = 16")
  message(FATAL_ERROR "the run header does not state the effective batch:\n${last_out}")
endif()
compare(${WORK}/two/checkpoint.safetensors ${WORK}/one/checkpoint.safetensors)
run_focus("2 processes, 5 steps" ${common} --set batch_size=8 --set steps=5 --nproc 2 --run-dir ${WORK}/switch)
run_focus("resumed by one process" char-gpt -q --resume --set steps=10 --set batch_size=16 --run-dir ${WORK}/switch)
compare(${WORK}/switch/checkpoint.safetensors ${WORK}/one/checkpoint.safetensors)
