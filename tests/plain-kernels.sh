#!/bin/sh
# The plain C layer kernels, which CPUs without AVX-512 run: on an AVX-512
# machine the unit tests above exercise only src/nn/*_avx512.c, so the layer
# and model tests run again with GLORA_NN=plain (and the training tests: the
# scalar AdamW loop must give the AVX-512 one's bits). A bad GLORA_NN value
# is reported, not ignored.
set -e
GLORA_NN=plain "$top_builddir/tests/test_nn"
GLORA_NN=plain "$top_builddir/tests/test_model"
GLORA_NN=plain "$top_builddir/tests/test_train"
out=$(GLORA_NN=bogus "$top_builddir/tests/test_nn" 2>&1)
case "$out" in
*"GLORA_NN='bogus' is not one of auto, plain"*) ;;
*) echo "FAIL: no message for GLORA_NN=bogus"; exit 1 ;;
esac
