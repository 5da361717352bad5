// Fused Split LBI + projection for CPU, as an XLA FFI custom call (target "iss_jax_lbi_smooth").
//
// The same algorithm as iss_jax/_src/lbi.py (step) and iss_jax/_src/smooth.py (stopping rule), with the
// same floating-point operations in the same order, so it stops every image at the same step as the XLA
// scheduler. One image at a time runs all its steps with its whole state (about 16 floats per pixel)
// in L1/L2 cache, in channel-planar layout so that every loop is a long, vectorisable pass; images are
// shared out dynamically over XLA's intra-op thread pool, so each stops at its own step with no waiting.
// At each target the support is projected (Prop. 3.1) with union-find; component sums in double.
//
// Built on first use by iss_jax/_src/cpu_kernel.py with the system C++ compiler.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <numeric>
#include <type_traits>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// ISS_JAX_PART selects what this translation unit compiles, so that the build can run two compiler jobs
// in parallel and link them: 0 (default) everything, 1 the float32 path and the FFI handler, 2 the
// float64 path.
#ifndef ISS_JAX_PART
#define ISS_JAX_PART 0
#endif

namespace iss_jax_kernel {

// One call's arguments: `images` images of H x W x C, P targets each, per-image parameters.
template <typename T>
struct Problem {
  int64_t images;
  int H, W, C, P;
  const T *x, *targets, *kappa, *nu, *alpha;
  const int32_t* maxiter;
  T* out;
  int32_t* steps;
  float* sparsity;
};

void RunFloat(ffi::ThreadPool& pool, const Problem<float>& pr);
void RunDouble(ffi::ThreadPool& pool, const Problem<double>& pr);

}  // namespace iss_jax_kernel

namespace {

using iss_jax_kernel::Problem;

// The per-image arrays, carved out of one buffer: each starts on a 64-byte boundary (whole-vector
// loads; 1.6x faster than malloc's 16-byte alignment here), staggered by 64 bytes more per array
// so that no two share their address modulo 4 KiB (store-to-load false dependencies).
template <typename T>
struct Workspace {
  static constexpr size_t kLine = 64 / sizeof(T);
  std::vector<T> arena;
  T *x, *b, *zh, *zv, *sh, *sv, *dzh, *dzv, *sq;
  std::vector<int32_t> parent;
  std::vector<double> sums;
  std::vector<int32_t> counts;

  // Sizes in elements, each followed by zeros; `lead` elements of zeros precede dzh and dzv.
  void Reset(size_t n, size_t hw, size_t w) {
    const size_t sizes[9] = {n, n + 1, n, n, hw, hw, n + 1, n + w, hw};
    const size_t leads[9] = {0, 0, 0, 0, 0, 0, 1, w, 0};
    size_t offsets[9], total = kLine;  // room to align the start
    for (int a = 0; a < 9; ++a) {
      const size_t before = (leads[a] + kLine - 1) / kLine * kLine;
      offsets[a] = total + before;
      const size_t span = (before + sizes[a] - leads[a] + kLine - 1) / kLine * kLine;
      const size_t page = 4096 / sizeof(T);
      total += (span + page - 1) / page * page + (a + 1) * kLine;
    }
    arena.assign(total, T(0));
    const uintptr_t base = reinterpret_cast<uintptr_t>(arena.data());
    const size_t shift = ((64 - base % 64) % 64) / sizeof(T);
    T* starts[9];
    for (int a = 0; a < 9; ++a) starts[a] = arena.data() + shift + offsets[a];
    x = starts[0]; b = starts[1]; zh = starts[2]; zv = starts[3]; sh = starts[4]; sv = starts[5];
    dzh = starts[6]; dzv = starts[7]; sq = starts[8];
  }
};

int32_t Find(std::vector<int32_t>& parent, int32_t i) {
  while (parent[i] != i) {
    parent[i] = parent[parent[i]];
    i = parent[i];
  }
  return i;
}

void Union(std::vector<int32_t>& parent, int32_t a, int32_t b) {
  a = Find(parent, a);
  b = Find(parent, b);
  if (a != b) parent[std::max(a, b)] = std::min(a, b);
}

// Projection of the planar b onto the components of the inactive edges (||z_e|| <= 1); writes the
// (H, W, C) interleaved result.
template <typename T>
void Project(int H, int W, int C, Workspace<T>& w, T* out) {
  const int HW = H * W;
  std::vector<int32_t>& parent = w.parent;
  parent.resize(HW);
  std::iota(parent.begin(), parent.end(), 0);
  for (int i = 0; i < H; ++i) {
    for (int j = 0; j < W; ++j) {
      const int p = i * W + j;
      T qh = 0, qv = 0;
      for (int c = 0; c < C; ++c) {
        const T a = w.zh[c * HW + p], v = w.zv[c * HW + p];
        qh = c ? qh + a * a : a * a;
        qv = c ? qv + v * v : v * v;
      }
      if (j + 1 < W && !(qh > T(1))) Union(parent, p, p + 1);
      if (i + 1 < H && !(qv > T(1))) Union(parent, p, p + W);
    }
  }
  w.sums.assign(static_cast<size_t>(HW) * C, 0.0);
  w.counts.assign(HW, 0);
  for (int p = 0; p < HW; ++p) {
    const int32_t r = Find(parent, p);
    w.counts[r] += 1;
    for (int c = 0; c < C; ++c) w.sums[static_cast<size_t>(r) * C + c] += w.b[c * HW + p];
  }
  for (int p = 0; p < HW; ++p) {
    const int32_t r = parent[p];  // fully compressed by the loop above
    for (int c = 0; c < C; ++c)
      out[static_cast<size_t>(p) * C + c] = static_cast<T>(w.sums[static_cast<size_t>(r) * C + c] /
                                                           w.counts[r]);
  }
}

// z += alpha (D b - g) / nu on one channel plane of edges e = (q, q + offset), g = kappa scale z; keeps
// dz = z_new - z_old for b's update and accumulates ||z_e||^2 over the channels in sq (first: sq = z^2).
template <typename T, bool kUnitNu>
inline void EdgePlane(int len, int offset, bool first, const T* __restrict bc, const T* __restrict scale,
                      T* __restrict zc, T* __restrict dc, T* __restrict sq, T kappa, T nu, T alpha) {
  const T* __restrict next = bc + offset;  // a separate pointer: GCC vectorises the loop only so
  #pragma GCC ivdep  // distinct arrays: no versioning for aliasing
  for (int q = 0; q < len; ++q) {
    const T g = (kappa * scale[q]) * zc[q];
    const T r = kUnitNu ? (next[q] - bc[q]) - g : ((next[q] - bc[q]) - g) / nu;
    const T zn = zc[q] + alpha * r;
    dc[q] = zn - zc[q];
    zc[q] = zn;
    sq[q] = first ? zn * zn : sq[q] + zn * zn;
  }
}

// Group scale 1 - 1/||z_e|| of every edge (0 where ||z_e|| <= 1, i.e. g_e = 0), branch-free so that it
// vectorises; returns the number of active edges.
template <typename T>
inline int64_t GroupScale(int len, const T* __restrict sq, T* __restrict scale) {
  using Count = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;  // lanes as wide as T
  Count active = 0;
  #pragma GCC ivdep  // distinct arrays: no versioning for aliasing
  for (int q = 0; q < len; ++q) {
    const T s = sq[q];
    const T safe = s > T(1) ? s : T(1);  // inactive: 1 - 1/sqrt(1) = 0 exactly
    scale[q] = T(1) - T(1) / std::sqrt(safe);
    active += static_cast<Count>(s > T(1));
  }
  return active;
}

// Runs one image to each of its P targets (visited in order; a target is reached by the first state
// with sparsity >= target, or at step maxiter) and writes the projected image, step and sparsity there.
// kC > 0 fixes the channel count at compile time (the channel loops unroll); kC = 0 reads it from C_.
template <typename T, bool kUnitNu, int kC>
void SmoothImage(const T* x, int H, int W, int C_, const T* targets, int P, T kappa, T nu, T alpha,
                 int64_t maxiter, T* out, int32_t* out_steps, float* out_sparsity, Workspace<T>& w) {
  const int C = kC ? kC : C_;
  const int HW = H * W;
  const int n = C * HW;
  const int m = H * (W - 1) + (H - 1) * W;
  // Zero padding after/before the planes makes every shifted read in range and zero where the grid ends.
  w.Reset(n, HW, W);
  T* __restrict xp = w.x;
  T* __restrict b = w.b;  // b[n] = 0
  T* __restrict zh = w.zh;
  T* __restrict zv = w.zv;
  T* __restrict sh = w.sh;
  T* __restrict sv = w.sv;
  T* __restrict dzh = w.dzh;  // dzh[-1] = 0
  T* __restrict dzv = w.dzv;  // dzv[-W .. -1] = 0
  T* __restrict sq = w.sq;
  for (int p = 0; p < HW; ++p)
    for (int c = 0; c < C; ++c) xp[c * HW + p] = x[static_cast<size_t>(p) * C + c];

  int64_t count = 0, k = 0;
  int j = 0;
  for (;;) {
    const float sparsity = static_cast<float>(count) / static_cast<float>(m);
    while (j < P && (static_cast<T>(sparsity) >= targets[j] || k >= maxiter)) {
      Project(H, W, C, w, out + static_cast<size_t>(j) * n);
      out_steps[j] = static_cast<int32_t>(k);
      out_sparsity[j] = sparsity;
      ++j;
    }
    if (j == P) return;

    // Horizontal edges (i, q) - (i, q + 1), one flat pass per channel plane; the wrapped column W - 1
    // is reset to zero before its group norm counts.
    for (int c = 0; c < C; ++c) {
      T* zc = zh + c * HW;
      T* dc = dzh + c * HW;
      EdgePlane<T, kUnitNu>(HW, 1, c == 0, b + c * HW, sh, zc, dc, sq, kappa, nu, alpha);
      for (int i = 0; i < H; ++i) {
        dc[i * W + W - 1] = 0;
        zc[i * W + W - 1] = 0;
      }
    }
    for (int i = 0; i < H; ++i) sq[i * W + W - 1] = 0;
    count = GroupScale(HW, sq, sh);
    // Vertical edges (i, q) - (i + 1, q): the last row of each plane stays zero.
    const int nv = HW - W;
    for (int c = 0; c < C; ++c)
      EdgePlane<T, kUnitNu>(nv, W, c == 0, b + c * HW, sv, zv + c * HW, dzv + c * HW, sq, kappa, nu, alpha);
    count += GroupScale(nv, sq, sv);
    // b -= kappa (alpha (b - x) + D^T (z_new - z_old)); the reads left of column 0 and above row 0 hit
    // a zero (column W - 1 of the previous row, the previous plane's last row, or the padding).
    for (int c = 0; c < C; ++c) {
      T* __restrict bc = b + c * HW;
      const T* __restrict xc = xp + c * HW;
      const T* __restrict dh = dzh + c * HW;
      const T* __restrict left = dh - 1;
      const T* __restrict dv = dzv + c * HW;
      const T* __restrict above = dv - W;
      #pragma GCC ivdep  // distinct arrays: no versioning for aliasing
      for (int q = 0; q < HW; ++q) {
        const T dt = ((left[q] - dh[q]) + above[q]) - dv[q];
        bc[q] = bc[q] - kappa * (alpha * (bc[q] - xc[q]) + dt);
      }
    }
    ++k;
  }
}

// Work shared by the calling thread and the pool tasks; heap-allocated so a task that starts after the
// call returned finds an empty queue and touches nothing else.
struct Queue {
  explicit Queue(int64_t n) : size(n) {}
  const int64_t size;
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::condition_variable cv;
  int64_t running = 0;
};

// Takes images from the queue until it is empty.
template <typename T>
void Work(const Problem<T>& pr, Queue& q) {
  Workspace<T> w;
  const size_t n = static_cast<size_t>(pr.H) * pr.W * pr.C;
  for (int64_t i; (i = q.next.fetch_add(1)) < q.size;) {
    const bool unit = pr.nu[i] == T(1);
    const auto run = pr.C == 3 ? (unit ? SmoothImage<T, true, 3> : SmoothImage<T, false, 3>)
                   : pr.C == 1 ? (unit ? SmoothImage<T, true, 1> : SmoothImage<T, false, 1>)
                               : (unit ? SmoothImage<T, true, 0> : SmoothImage<T, false, 0>);
    run(pr.x + i * n, pr.H, pr.W, pr.C, pr.targets + i * pr.P, pr.P, pr.kappa[i], pr.nu[i], pr.alpha[i],
        pr.maxiter[i], pr.out + i * pr.P * n, pr.steps + i * pr.P, pr.sparsity + i * pr.P, w);
  }
}

// Shares the images out over the calling thread and the pool's threads.
template <typename T>
void RunAll(ffi::ThreadPool& pool, const Problem<T>& pr) {
  auto queue = std::make_shared<Queue>(pr.images);
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), pr.images) - 1;
  for (int64_t t = 0; t < helpers; ++t) {
    pool.Schedule([queue, pr] {
      {
        std::lock_guard<std::mutex> lock(queue->mu);
        if (queue->next.load() >= queue->size) return;
        ++queue->running;
      }
      Work(pr, *queue);
      std::lock_guard<std::mutex> lock(queue->mu);
      if (--queue->running == 0) queue->cv.notify_all();
    });
  }
  Work(pr, *queue);
  std::unique_lock<std::mutex> lock(queue->mu);
  queue->cv.wait(lock, [&] { return queue->running == 0; });
}

}  // namespace

#if ISS_JAX_PART != 2
void iss_jax_kernel::RunFloat(ffi::ThreadPool& pool, const Problem<float>& pr) { RunAll(pool, pr); }
#endif
#if ISS_JAX_PART != 1
void iss_jax_kernel::RunDouble(ffi::ThreadPool& pool, const Problem<double>& pr) { RunAll(pool, pr); }
#endif

#if ISS_JAX_PART != 2
namespace {

ffi::Error Smooth(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer targets, ffi::AnyBuffer kappa,
                  ffi::AnyBuffer nu, ffi::AnyBuffer alpha, ffi::Buffer<ffi::S32> maxiter,
                  ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::Buffer<ffi::S32>> steps,
                  ffi::Result<ffi::Buffer<ffi::F32>> sparsity) {
  const auto dims = x.dimensions();
  if (dims.size() < 3) return ffi::Error::InvalidArgument("x must have shape (..., H, W, C)");
  const int H = static_cast<int>(dims[dims.size() - 3]);
  const int W = static_cast<int>(dims[dims.size() - 2]);
  const int C = static_cast<int>(dims[dims.size() - 1]);
  if (H < 2 || W < 2 || C < 1) return ffi::Error::InvalidArgument("images must be at least 2x2");
  const int64_t images = static_cast<int64_t>(x.element_count()) / (static_cast<int64_t>(H) * W * C);
  if (images == 0) return ffi::Error::Success();
  const int P = static_cast<int>(static_cast<int64_t>(targets.element_count()) / images);
  if (static_cast<int64_t>(kappa.element_count()) != images ||
      static_cast<int64_t>(maxiter.element_count()) != images ||
      static_cast<int64_t>(out->element_count()) != images * P * H * W * C)
    return ffi::Error::InvalidArgument("per-image arguments do not match the number of images");
  const auto type = x.element_type();
  if (targets.element_type() != type || kappa.element_type() != type || nu.element_type() != type ||
      alpha.element_type() != type || out->element_type() != type)
    return ffi::Error::InvalidArgument("x, targets, kappa, nu, alpha and out must share one dtype");
  if (type == ffi::DataType::F32) {
    iss_jax_kernel::RunFloat(
        pool, Problem<float>{images, H, W, C, P, x.typed_data<float>(), targets.typed_data<float>(),
                             kappa.typed_data<float>(), nu.typed_data<float>(), alpha.typed_data<float>(),
                             maxiter.typed_data(), out->typed_data<float>(), steps->typed_data(),
                             sparsity->typed_data()});
  } else if (type == ffi::DataType::F64) {
    iss_jax_kernel::RunDouble(
        pool, Problem<double>{images, H, W, C, P, x.typed_data<double>(), targets.typed_data<double>(),
                              kappa.typed_data<double>(), nu.typed_data<double>(), alpha.typed_data<double>(),
                              maxiter.typed_data(), out->typed_data<double>(), steps->typed_data(),
                              sparsity->typed_data()});
  } else {
    return ffi::Error::InvalidArgument("only float32 and float64 images are supported");
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(IssJaxLbiSmooth, Smooth,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()   // x (..., H, W, C)
                                  .Arg<ffi::AnyBuffer>()   // targets (..., P)
                                  .Arg<ffi::AnyBuffer>()   // kappa (...)
                                  .Arg<ffi::AnyBuffer>()   // nu (...)
                                  .Arg<ffi::AnyBuffer>()   // alpha (...)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // maxiter (...)
                                  .Ret<ffi::AnyBuffer>()   // projected images (..., P, H, W, C)
                                  .Ret<ffi::Buffer<ffi::S32>>()  // steps (..., P)
                                  .Ret<ffi::Buffer<ffi::F32>>());  // sparsity (..., P)
#endif  // ISS_JAX_PART != 2
