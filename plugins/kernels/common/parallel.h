// The kernel's parallel-for: an OpenMP parallel region whose workers take jobs one at a time.
//
// OpenMP, and not a private thread pool, because torch runs its CPU ops on OpenMP too and its wheels bundle
// a libgomp with the system soname (libgomp.so.1): in a torch process this library joins torch's runtime,
// whose workers are still spinning from the previous op and pick our jobs up at once. A private pool
// competes with those spinning workers for the cores instead, which cost about 3.5 ms per call on 2 cores
// (measured in docs/PERFORMANCE.md).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include <omp.h>

#include "gsmlp/common.h"

namespace gsmlp::cpu {

inline int hardware_threads() { return std::max(1, omp_get_num_procs()); }

// Runs fn(job, worker) for job in [0, jobs) on min(threads, jobs) workers, worker in [0, workers).
// Jobs are handed out one at a time, so a slow core (shared machine) does not hold back the rest.
template <typename Fn>
void parallel_for(int64_t jobs, int threads, Fn fn) {
  const int workers = static_cast<int>(std::min<int64_t>(std::max(threads, 1), jobs));
  if (workers <= 0) return;
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(workers)
  {
    const int worker = omp_get_thread_num();
    for (int64_t job = next++; job < jobs; job = next++) fn(job, worker);
  }
}

// The same on a host runtime's threads (gsmlp_parallel, e.g. ONNX Runtime's intra-op pool): the host calls
// one worker function per worker index, and the workers take jobs from one shared counter. A host that
// runs the workers one after the other (a pool of one thread) still runs every job, on worker 0.
template <typename Fn>
void parallel_for(int64_t jobs, int threads, const gsmlp_parallel* host, Fn fn) {
  if (host == nullptr || host->run == nullptr) return parallel_for(jobs, threads, fn);
  const int workers = static_cast<int>(std::min<int64_t>(std::max(threads, 1), jobs));
  if (workers <= 0) return;
  struct Shared {
    std::atomic<int64_t> next;
    int64_t jobs;
    int workers;
    Fn* fn;
  } shared{{0}, jobs, workers, &fn};
  host->run(host->context, workers, [](void* arg, int worker) {
    auto* s = static_cast<Shared*>(arg);
    if (worker < 0 || worker >= s->workers) return;  // a host must not invent workers: ignore, never overrun
    for (int64_t job = s->next++; job < s->jobs; job = s->next++) (*s->fn)(job, worker);
  }, &shared);
}

}  // namespace gsmlp::cpu
