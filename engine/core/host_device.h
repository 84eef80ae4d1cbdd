// ATTN_HOST_DEVICE marks an inline function that both executors call: __host__ __device__
// when nvcc compiles it, nothing otherwise. The rules written this way (attention/
// sparse_keys.h, attention/lsh_rule.h) exist once for the CPU and the CUDA code.
#pragma once

#if defined(__CUDACC__)
#define ATTN_HOST_DEVICE __host__ __device__
#else
#define ATTN_HOST_DEVICE
#endif
