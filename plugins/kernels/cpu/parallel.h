// A minimal parallel-for on std::thread. Not OpenMP: torch ships its own OpenMP runtime, and two
// runtimes whose idle threads spin against each other on a small machine cost milliseconds per call.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace gsmlp::cpu {

inline int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

// Runs fn(job, worker) for job in [0, jobs) on min(threads, jobs) workers; worker 0 is the caller.
// Jobs are handed out one at a time, so a slow core (shared machine) does not hold back the rest.
template <typename Fn>
void parallel_for(int64_t jobs, int threads, Fn fn) {
  const int workers = static_cast<int>(std::min<int64_t>(std::max(threads, 1), jobs));
  std::atomic<int64_t> next{0};
  auto work = [&](int worker) {
    for (int64_t job = next++; job < jobs; job = next++) fn(job, worker);
  };
  std::vector<std::thread> pool;
  pool.reserve(workers > 0 ? workers - 1 : 0);
  for (int w = 1; w < workers; ++w) pool.emplace_back(work, w);
  if (workers > 0) work(0);
  for (auto& t : pool) t.join();
}

}  // namespace gsmlp::cpu
