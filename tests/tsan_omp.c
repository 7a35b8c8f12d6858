/* Linked into every program of a ThreadSanitizer build (-DGNNREC_SANITIZE=thread): tells TSan
 * what an OpenMP parallel region guarantees, so that it checks gnnrec's threaded loops instead of
 * reporting libgomp's own synchronisation as races.
 *
 * libgomp is not instrumented. It starts a region's threads and waits for them at the region's end
 * with futexes and atomics that TSan cannot see, so every write a worker makes inside a region and
 * the master reads after it (and every write the master makes before a region that a reused
 * worker reads inside it) is reported as a race, although OpenMP orders them: everything before
 * a region happens before its body on every thread, and the body on every thread happens before
 * everything after the region. This wrapper of GOMP_parallel, the entry point GCC emits for every
 * `#pragma omp parallel` (with or without `for`), states exactly those two orders with TSan's
 * annotations, on addresses private to one region. Nothing is suppressed: two threads of one
 * region that touch the same memory without synchronising are still reported, and a region entered
 * some other way (a GOMP_parallel_loop_* entry, which gnnrec does not use today) shows up as
 * reports rather than hiding any. */
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>
#include <stdlib.h>

typedef void region_fn(void *);
typedef void gomp_parallel_t(region_fn *fn, void *data, unsigned num_threads, unsigned flags);

void GOMP_parallel(region_fn *fn, void *data, unsigned num_threads, unsigned flags);

/* One region: the outlined body with its data, and the two addresses its orders sync on. */
typedef struct {
    region_fn *fn;
    void *data;
    char fork, join;
} region_t;

/* Runs on each thread of the region, the master included. */
static void body(void *arg)
{
    region_t *r = arg;
    __tsan_acquire(&r->fork);
    r->fn(r->data);
    __tsan_release(&r->join);
}

void GOMP_parallel(region_fn *fn, void *data, unsigned num_threads, unsigned flags)
{
    /* Looked up at each region (a few per training batch): no state shared between threads. */
    gomp_parallel_t *real = (gomp_parallel_t *)dlvsym(RTLD_NEXT, "GOMP_parallel", "GOMP_4.0");
    if (!real)
        abort(); /* no libgomp after this program: it cannot have called us */
    region_t r = {fn, data, 0, 0};
    __tsan_release(&r.fork);
    real(body, &r, num_threads, flags);
    __tsan_acquire(&r.join);
}
