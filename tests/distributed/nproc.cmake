# `focus train MODEL --nproc 2` for the models that train data-parallel.
#
# char-gpt against one process with twice the per-rank batch: the same weights (float32, rtol
# 1e-5). Then a run of 2 processes stopped at step 5 and resumed by one process ends where the
# one-process run ends (resuming with another world size). A constant learning rate keeps the
# schedule independent of the step count.
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
function(compare a b)  # extra arguments go to the script (--skip-key-bias)
  execute_process(COMMAND ${PYTHON} ${COMPARE} ${a} ${b} 1e-5 ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out)
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

# spam, vit and g2p: the run header states the per-rank batch, rank 0 writes the run directory
# and every metric of the report is a number (nlohmann::json writes NaN and inf as null).
function(check_run what dir header)
  if(NOT last_out MATCHES "effective batch 2 x ")
    message(FATAL_ERROR "${what}: the run header does not state the effective batch:\n${last_out}")
  endif()
  if(NOT last_out MATCHES "${header}")
    message(FATAL_ERROR "${what}: the model's header does not say '${header}':\n${last_out}")
  endif()
  if(NOT EXISTS ${dir}/report.json)
    message(FATAL_ERROR "${what}: no ${dir}/report.json")
  endif()
  file(READ ${dir}/report.json report)
  string(JSON n LENGTH "${report}" metrics)
  if(n EQUAL 0)
    message(FATAL_ERROR "${what}: the report has no metrics:\n${report}")
  endif()
  math(EXPR last "${n} - 1")
  foreach(i RANGE ${last})
    string(JSON name MEMBER "${report}" metrics ${i})
    string(JSON type TYPE "${report}" metrics ${name})
    if(NOT type STREQUAL "NUMBER")
      message(FATAL_ERROR "${what}: the report's ${name} is not finite:\n${report}")
    endif()
  endforeach()
endfunction()

# spam and vit without dropout, bucketing or augmentation, for fewer steps than an epoch: the
# 2 ranks' batches (DistributedSampler) are then the one process's batches (a shuffling
# DataLoader with the same seed) split in two, so the weights agree with one process and twice
# the batch, but for the attention's key bias (see compare_checkpoints.py).
set(spam spam -q --overwrite --set dataset=synthetic --set d_model=16 --set dim_feedforward=32 --set max_len=48
    --set dropout=0 --set bucket=0 --set steps=8 --set eval_every=4 --set log_every=4)
run_focus("spam, one process, batch 32" ${spam} --set batch_size=32 --run-dir ${WORK}/spam_one)
run_focus("spam, 2 processes, batch 16 each" ${spam} --set batch_size=16 --nproc 2 --run-dir ${WORK}/spam_two)
check_run(spam ${WORK}/spam_two "of batch 2 ranks x 16")
compare(${WORK}/spam_two/checkpoint.safetensors ${WORK}/spam_one/checkpoint.safetensors --skip-key-bias)
# ... and with bucketing, for two epochs (the schedule in epochs: half the steps per epoch).
run_focus("spam, 2 processes, bucketed, 2 epochs" spam -q --overwrite --set dataset=synthetic --set d_model=16
          --set dim_feedforward=32 --set max_len=48 --set epochs=2 --set eval_every=5 --nproc 2
          --run-dir ${WORK}/spam_bucket)
check_run("spam, bucketed" ${WORK}/spam_bucket "10 steps \\(5 per epoch of batch 2 ranks x 32\\)")

set(vit vit -q --overwrite --set dataset=synthetic --set dim=32 --set depth=2 --set heads=2 --set mlp_dim=64
    --set steps=10 --set lr=3e-3 --set warmup_epochs=0.25 --set attention_images=2 --set log_every=5
    --set eval_batch_size=64)
run_focus("vit, one process, batch 50" ${vit} --set batch_size=50 --run-dir ${WORK}/vit_one)
run_focus("vit, 2 processes, batch 25 each" ${vit} --set batch_size=25 --nproc 2 --run-dir ${WORK}/vit_two)
check_run(vit ${WORK}/vit_two "10 steps of 2 ranks x 25 \\(20 per epoch\\)")
compare(${WORK}/vit_two/checkpoint.safetensors ${WORK}/vit_one/checkpoint.safetensors --skip-key-bias)
if(NOT EXISTS ${WORK}/vit_two/attention_0.png)
  message(FATAL_ERROR "vit: rank 0 wrote no attention pictures")
endif()

# g2p: the loss is a mean over a batch's phonemes, so 2 ranks are not one process with twice
# the batch exactly; the run must finish with finite metrics.
run_focus("g2p, 2 processes" g2p -q --overwrite --set dataset=synthetic --set synthetic_words=600 --set d_model=32
          --set nhead=4 --set encoder_layers=1 --set decoder_layers=1 --set dim_feedforward=64 --set dropout=0.0
          --set batch_size=32 --set steps=30 --set warmup=10 --set lr=0.003 --set eval_every=15
          --set checkpoint_every=20 --set log_every=10 --set beam=3 --set examples=3 --nproc 2
          --run-dir ${WORK}/g2p)
check_run(g2p ${WORK}/g2p "30 steps of 2 ranks x 32 pronunciations")
