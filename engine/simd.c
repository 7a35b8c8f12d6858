/* The one choice of compiled kernel kind: the CPU's best, lowered by GNNREC_ISA, kept in an atomic
 * (ThreadSanitizer sees every read and write of it as synchronised). */
#include "engine/simd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[ENG_ISA_COUNT] = {
    [ENG_ISA_BASELINE] = "baseline",
    [ENG_ISA_AVX2] = "avx2",
    [ENG_ISA_AVX512] = "avx512",
};

/* The kind eng_isa returns, or -1 until the first call decides it. */
static atomic_int current = -1;

/* The best kind this CPU runs (the checks include the operating system's support for the wider
 * registers). */
static eng_isa_t cpu_best(void)
{
#if ENG_SIMD_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return ENG_ISA_AVX512;
    if (__builtin_cpu_supports("x86-64-v3"))
        return ENG_ISA_AVX2;
#endif
    return ENG_ISA_BASELINE;
}

const char *eng_isa_name(eng_isa_t isa)
{
    return (unsigned)isa < ENG_ISA_COUNT ? names[isa] : NULL;
}

eng_isa_t eng_isa(void)
{
    int isa = atomic_load(&current);
    if (isa >= 0)
        return (eng_isa_t)isa;
    int want = cpu_best();
    const char *cap = getenv("GNNREC_ISA");
    for (int k = 0; cap && k < ENG_ISA_COUNT; k++)
        if (strcmp(cap, names[k]) == 0 && k < want)
            want = k;
    /* Threads that get here together all computed the same kind; one of them stores it, unless
     * eng_isa_force stored one meanwhile, which then stands. */
    int expected = -1;
    return atomic_compare_exchange_strong(&current, &expected, want) ? (eng_isa_t)want
                                                                     : (eng_isa_t)expected;
}

eng_isa_t eng_isa_force(eng_isa_t isa)
{
    eng_isa_t best = cpu_best();
    eng_isa_t set = (unsigned)isa < best ? isa : best;
    atomic_store(&current, (int)set);
    return set;
}
