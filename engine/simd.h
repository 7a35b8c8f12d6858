/* What the engine's vector kernels share: the vector types, the attributes that compile a
 * function for one kind of CPU, and the one scheme that picks which compiled kind runs.
 *
 * A kernel is written once, as an always-inline function over the vector types below, and
 * instantiated once per kind in a small function carrying that kind's ENG_TARGET_* attribute.
 * The instances form a table indexed by eng_isa_t (ENG_ISA_TABLE), and the caller runs
 * table[eng_isa()] (engine/csr.c), or the entry for a kind it fixed earlier (engine/index.c fixes
 * one per index, so that all its functions give the same bits). One binary thus runs anywhere and
 * uses the vector units where they exist. The kinds are chosen at run time by plain code, never
 * by ifunc resolvers (GCC target_clones): those run before ThreadSanitizer's runtime is set up
 * and crash a -DGNNREC_SANITIZE=thread build before main. Overview: docs/serving-kernel.md. */
#ifndef GNNREC_ENGINE_SIMD_H
#define GNNREC_ENGINE_SIMD_H

#include <stdint.h>

/* The kinds of compiled kernel, in increasing order of what the CPU must have. */
typedef enum {
    ENG_ISA_BASELINE, /* what the compiler targets by default: SSE2 on x86-64 */
    ENG_ISA_AVX2,     /* x86-64-v3: AVX2 and fused multiply-add, 16 vector registers */
    ENG_ISA_AVX512,   /* x86-64-v4: AVX-512 (F, BW, CD, DQ, VL), 32 vector registers */
    ENG_ISA_COUNT
} eng_isa_t;

/* The kind the kernels run: the best the CPU has, lowered by the environment variable GNNREC_ISA
 * (=avx2 or =baseline; other values change nothing), or the kind set by eng_isa_force. Decided at
 * the first call (GNNREC_ISA is read then, once) and kept in an atomic, so any thread may call it
 * at any time; it costs one atomic load. Off x86-64 with GCC, always ENG_ISA_BASELINE. */
eng_isa_t eng_isa(void);

/* "baseline", "avx2" or "avx512" (static text), as GNNREC_ISA spells them; NULL when isa is not
 * a kind. */
const char *eng_isa_name(eng_isa_t isa);

/* The test and benchmark hook: makes isa, or the best kind the CPU has when that is lower, the
 * kind eng_isa returns from now on, whatever GNNREC_ISA says; returns the kind set, so a caller
 * learns whether the CPU runs isa. Kernels already running, and indexes already built, keep
 * theirs. */
eng_isa_t eng_isa_force(eng_isa_t isa);

/* Vector types (GCC vector extensions: arithmetic is lane by lane, and each kind's compilation
 * maps them to its registers). Naturally aligned, as their size: for arrays laid out for them. */
typedef float eng_v4f __attribute__((vector_size(16)));
typedef float eng_v8f __attribute__((vector_size(32)));
typedef float eng_v16f __attribute__((vector_size(64)));
typedef int32_t eng_v4i __attribute__((vector_size(16)));
typedef int32_t eng_v8i __attribute__((vector_size(32)));
typedef int32_t eng_v16i __attribute__((vector_size(64)));
/* Eight floats at any float-aligned address (rows of a matrix whose width is a multiple of 8 but
 * whose base is only malloc-aligned): the compiler emits unaligned loads and stores. */
typedef float eng_v8f_u __attribute__((vector_size(32), aligned(4)));

#define ENG_ALWAYS_INLINE inline __attribute__((always_inline))

/* acc[0..7] += a x for a row x of 64 floats: the step of the kernels that keep a 64-float row in
 * eight vector registers while the rows they sum stream through (an array the compiler keeps
 * in registers once this is inlined). */
static ENG_ALWAYS_INLINE void eng_v8x8_axpy(eng_v8f_u acc[8], float a, const float *x)
{
    const eng_v8f_u *xv = (const eng_v8f_u *)x;
    for (int j = 0; j < 8; j++)
        acc[j] += a * xv[j];
}

/* ENG_SIMD_X86 is 1 where the AVX2 and AVX-512 kinds are compiled (x86-64 with GCC: the target
 * attributes and CPU checks below are GCC's), 0 elsewhere. Functions for those kinds carry
 * ENG_TARGET_AVX2 or ENG_TARGET_AVX512 and exist only when ENG_SIMD_X86 is 1. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ENG_SIMD_X86 1
#define ENG_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
#define ENG_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#else
#define ENG_SIMD_X86 0
#endif

/* The initialiser of a kernel's table, one entry per eng_isa_t: where only the baseline kind is
 * compiled, every entry is the baseline function and the others' names are never seen. A kernel
 * without a wider variant for a kind names a narrower one there. */
_Static_assert(ENG_ISA_COUNT == 3, "ENG_ISA_TABLE lists one entry per kind");
#if ENG_SIMD_X86
#define ENG_ISA_TABLE(baseline, avx2, avx512)                                                      \
    {                                                                                              \
        baseline, avx2, avx512                                                                     \
    }
#else
#define ENG_ISA_TABLE(baseline, avx2, avx512)                                                      \
    {                                                                                              \
        baseline, baseline, baseline                                                               \
    }
#endif

#endif
