// Scalar definitions of every elementwise op, shared by the unary, binary and select
// kernels. Op codes must match UNARY / BINARY in src/backend/cuda/addon.ts. Each follows
// the semantics of tfjs' CPU backend (e.g. Maximum propagates NaN like Math.max, Mod takes
// the divisor's sign, Round rounds half to even), computed in C = float for float inputs
// and C = double for integer inputs (exact for every int32).
#pragma once
#include <cmath>

namespace tt {

enum UnaryOp : int {
  U_IDENTITY = 0, U_NEG, U_ABS, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SQUARE, U_TANH, U_SIGMOID,
  U_ERF, U_RELU, U_SIGN, U_FLOOR, U_CEIL, U_ROUND, U_RECIPROCAL, U_LOG1P, U_EXPM1, U_SIN,
  U_COS, U_SOFTPLUS, U_ELU, U_STEP, U_LEAKYRELU, U_CLIP, U_LOGICAL_NOT, U_ISNAN, U_ISINF,
  U_ISFINITE, U_RELU6, U_SELU, U_TAN, U_ATAN, U_ASIN, U_ACOS, U_SINH, U_COSH, U_ASINH,
  U_ACOSH, U_ATANH, U_GELU_TANH, U_SILU, U_COUNT
};

template <typename C>
__device__ __forceinline__ C unaryOp(int op, C x, C p0, C p1) {
  switch (op) {
    case U_IDENTITY: return x;
    case U_NEG: return -x;
    case U_ABS: return x < C(0) ? -x : x;
    case U_EXP: return exp(x);
    case U_LOG: return log(x);
    case U_SQRT: return sqrt(x);
    case U_RSQRT: return C(1) / sqrt(x);
    case U_SQUARE: return x * x;
    case U_TANH: return tanh(x);
    case U_SIGMOID: return C(1) / (C(1) + exp(-x));
    case U_ERF: return erf(x);
    case U_RELU: return x != x ? x : (x < C(0) ? C(0) : x);
    case U_SIGN: return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
    case U_FLOOR: return floor(x);
    case U_CEIL: return ceil(x);
    case U_ROUND: return rint(x);
    case U_RECIPROCAL: return C(1) / x;
    case U_LOG1P: return log1p(x);
    case U_EXPM1: return expm1(x);
    case U_SIN: return sin(x);
    case U_COS: return cos(x);
    case U_SOFTPLUS: return x > C(20) ? x : log1p(exp(x));
    case U_ELU: return x >= C(0) ? x : expm1(x);
    case U_STEP: return x != x ? x : (x > C(0) ? C(1) : p0);
    case U_LEAKYRELU: return x < C(0) ? p0 * x : x;
    case U_CLIP: return x != x ? x : (x < p0 ? p0 : (x > p1 ? p1 : x));
    case U_LOGICAL_NOT: return x == C(0) ? C(1) : C(0);
    case U_ISNAN: return x != x ? C(1) : C(0);
    case U_ISINF: return isinf(x) ? C(1) : C(0);
    case U_ISFINITE: return isfinite(x) ? C(1) : C(0);
    case U_RELU6: return x != x ? x : (x < C(0) ? C(0) : (x > C(6) ? C(6) : x));
    case U_SELU: return x >= C(0) ? C(1.0507009873554805) * x : C(1.0507009873554805) * C(1.6732632423543772) * expm1(x);
    case U_TAN: return tan(x);
    case U_ATAN: return atan(x);
    case U_ASIN: return asin(x);
    case U_ACOS: return acos(x);
    case U_SINH: return sinh(x);
    case U_COSH: return cosh(x);
    case U_ASINH: return asinh(x);
    case U_ACOSH: return acosh(x);
    case U_ATANH: return atanh(x);
    case U_GELU_TANH: return C(0.5) * x * (C(1) + tanh(C(0.7978845608028654) * (x + C(0.044715) * x * x * x)));
    case U_SILU: return x / (C(1) + exp(-x));
    default: return x;
  }
}

enum BinaryOp : int {
  B_ADD = 0, B_SUB, B_MUL, B_DIV, B_FLOORDIV, B_MOD, B_POW, B_MAX, B_MIN, B_SQDIFF, B_ATAN2,
  B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_AND, B_OR, B_PRELU, B_DIVNONAN, B_XOR, B_COUNT
};

template <typename C>
__device__ __forceinline__ C binaryOp(int op, C a, C b) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_FLOORDIV: return floor(a / b);
    case B_MOD: {
      C r = fmod(a, b);
      return (r != C(0) && ((r < C(0)) != (b < C(0)))) ? r + b : r;
    }
    case B_POW: return pow(a, b);
    case B_MAX: return (a != a || b != b) ? (a != a ? a : b) : (a > b ? a : b);
    case B_MIN: return (a != a || b != b) ? (a != a ? a : b) : (a < b ? a : b);
    case B_SQDIFF: return (a - b) * (a - b);
    case B_ATAN2: return atan2(a, b);
    case B_EQ: return a == b ? C(1) : C(0);
    case B_NE: return a != b ? C(1) : C(0);
    case B_LT: return a < b ? C(1) : C(0);
    case B_LE: return a <= b ? C(1) : C(0);
    case B_GT: return a > b ? C(1) : C(0);
    case B_GE: return a >= b ? C(1) : C(0);
    case B_AND: return (a != C(0) && b != C(0)) ? C(1) : C(0);
    case B_OR: return (a != C(0) || b != C(0)) ? C(1) : C(0);
    case B_PRELU: return a < C(0) ? a * b : a;
    case B_DIVNONAN: return b == C(0) ? C(0) : a / b;
    case B_XOR: return ((a != C(0)) != (b != C(0))) ? C(1) : C(0);
    default: return a;
  }
}

}  // namespace tt
