// f16 for the host simulation (run.sh): GCC's _Float16 rounds to nearest even, as __float2half_rn does.
#pragma once
struct __half { _Float16 h; };
inline __half __float2half_rn(float f) { return {(_Float16)f}; }
inline float __half2float(__half h) { return (float)h.h; }
