// Arithmetic peak of one core for the kernels' instruction mix (separate multiply and add, as
// every Remodule kernel uses for bit-identity with the page): AVX2 (8 lanes) against AVX-512 (16
// lanes), 12 independent chains held in registers. Issue 21 asked whether AVX-512 pays; on this
// machine (AMD EPYC, family 25 model 17) both give 117 GFLOP/s: the 512-bit units run as two
// 256-bit halves, so wider vectors do not raise the peak. Run: gcc -O2 -o /tmp/simd_peak tools/simd_peak.c && /tmp/simd_peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define R8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
__attribute__((target("avx2,fma"))) double run256(long n){
  __m256 b=_mm256_set1_ps(1.0000001f), c=_mm256_set1_ps(1e-7f);
#define D(i) __m256 a##i=_mm256_set1_ps((float)i);
  R8(D)
  double t=now();
  for(long k=0;k<n;k++){
#define S(i) a##i=_mm256_add_ps(_mm256_mul_ps(a##i,b),c);
    R8(S)
    __asm__ volatile("" ::: "memory");
  }
  t=now()-t;
  __m256 s=_mm256_setzero_ps();
#define A(i) s=_mm256_add_ps(s,a##i);
  R8(A)
  float v[8]; _mm256_storeu_ps(v,s); if(v[0]==12345) puts("x");
  return 12.0*8*2*n/t/1e9;
}
__attribute__((target("avx512f"))) double run512(long n){
  __m512 b=_mm512_set1_ps(1.0000001f), c=_mm512_set1_ps(1e-7f);
#define E(i) __m512 a##i=_mm512_set1_ps((float)i);
  R8(E)
  double t=now();
  for(long k=0;k<n;k++){
#define T(i) a##i=_mm512_add_ps(_mm512_mul_ps(a##i,b),c);
    R8(T)
    __asm__ volatile("" ::: "memory");
  }
  t=now()-t;
  __m512 s=_mm512_setzero_ps();
#define B(i) s=_mm512_add_ps(s,a##i);
  R8(B)
  if(_mm512_reduce_add_ps(s)==12345) puts("x");
  return 12.0*16*2*n/t/1e9;
}
int main(){ for(int r=0;r<3;r++){ double x=run256(50000000), y=run512(25000000); printf("mul+add GFLOP/s (12 chains): AVX2 %.1f  AVX-512 %.1f  ratio %.2f\n", x,y,y/x);} }
