// The training tape: values (row-major matrices in float or double), their gradients, and
// the backward closures that ops record in forward order. Ops live in exec/tape_ops.h;
// this file owns only the bookkeeping, recomputation (checkpoint) and the reversible stack.
#pragma once

#include <cassert>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "attnscope/tensor.h"

namespace attnscope::tape {

// A std allocator counting its bytes under a category chosen at run time (a parameter's
// data counts as weights, every other value's as activations).
template <typename T>
struct CountedAllocator {
  using value_type = T;
  // A vector given a new allocator by move assignment (make_param) must count under it.
  using propagate_on_container_move_assignment = std::true_type;
  MemCategory category = MemCategory::kActivations;
  CountedAllocator() = default;
  explicit CountedAllocator(MemCategory c) : category(c) {}
  template <typename U>
  CountedAllocator(const CountedAllocator<U>& o) : category(o.category) {}
  T* allocate(size_t n) {
    T* p = std::allocator<T>{}.allocate(n);
    MemTracker::instance().on_alloc(category, n * sizeof(T));
    return p;
  }
  void deallocate(T* p, size_t n) {
    MemTracker::instance().on_free(category, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  // resize() default-initialises (no zero pass: make_var_for_write); assign() still fills.
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  friend bool operator==(const CountedAllocator& a, const CountedAllocator& b) {
    return a.category == b.category;
  }
};
template <typename T>
using CountedVector = std::vector<T, CountedAllocator<T>>;

// One matrix on the tape: (rows, cols) row-major. data is counted under activations, grad
// (allocated on first use, zero-filled) under gradients. A parameter is a Value whose data
// is the weight itself, counted under weights (see make_param).
template <typename T>
struct Value {
  int64_t rows = 0, cols = 0;
  CountedVector<T> data;
  GradientVector<T> grad;
  bool requires_grad = false;

  int64_t numel() const { return rows * cols; }
  // The gradient buffer, zero-filled on first call.
  T* g() {
    if (grad.empty()) grad.assign(static_cast<size_t>(numel()), T(0));
    return grad.data();
  }
  bool has_grad() const { return !grad.empty(); }
};
template <typename T>
using Var = std::shared_ptr<Value<T>>;

template <typename T>
Var<T> make_var(int64_t rows, int64_t cols, bool requires_grad) {
  auto v = std::make_shared<Value<T>>();
  v->rows = rows;
  v->cols = cols;
  v->data.assign(static_cast<size_t>(rows * cols), T(0));
  v->requires_grad = requires_grad;
  return v;
}

// As make_var, with the values left unset: for an op that writes every element of its output.
template <typename T>
Var<T> make_var_for_write(int64_t rows, int64_t cols, bool requires_grad) {
  auto v = std::make_shared<Value<T>>();
  v->rows = rows;
  v->cols = cols;
  v->data.resize(static_cast<size_t>(rows * cols));
  v->requires_grad = requires_grad;
  return v;
}

// A trainable parameter holding a copy of values (rows * cols of them), counted as weights.
template <typename T, typename Src>
Var<T> make_param(int64_t rows, int64_t cols, const Src* values) {
  auto v = std::make_shared<Value<T>>();
  v->rows = rows;
  v->cols = cols;
  v->data = CountedVector<T>(CountedAllocator<T>(MemCategory::kWeights));
  v->data.resize(static_cast<size_t>(rows * cols));
  for (int64_t e = 0; e < rows * cols; ++e) v->data[static_cast<size_t>(e)] = T(values[e]);
  v->requires_grad = true;
  return v;
}

// Records backward closures while `recording`; a tape that does not record lets every
// intermediate value die as soon as the forward drops it (used for recomputation).
// backward() runs the closures newest first and frees each one (and what it saved) after
// it ran, so memory falls as the backward proceeds.
template <typename T>
class Tape {
 public:
  // What a family's graph (models/family_graph.h) needs of its executor: the value handle,
  // the scalar type, and whether it records a backward (training-only paths compile away
  // for an executor that does not).
  using V = Var<T>;
  using Scalar = T;
  static constexpr bool kRecords = true;

  explicit Tape(bool recording = true) : recording_(recording) {}
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  bool recording() const { return recording_; }
  // Called by ops after their forward; ignored when not recording.
  void push(std::function<void()> backward) {
    if (recording_) steps_.push_back(std::move(backward));
  }
  // Seeds d(loss) = 1 for a scalar (1, 1) loss and runs every recorded step.
  void backward(const Var<T>& loss) {
    assert(loss->numel() == 1 && "backward needs a scalar loss");
    loss->g()[0] += T(1);
    run_backward();
  }
  // Runs every recorded step with gradients already seeded on the outputs.
  void run_backward() {
    while (!steps_.empty()) {
      auto step = std::move(steps_.back());
      steps_.pop_back();
      step();
    }
  }
  size_t size() const { return steps_.size(); }

 private:
  bool recording_;
  std::vector<std::function<void()>> steps_;
};

// A differentiable function of some inputs that builds its ops on the tape it is given.
template <typename T>
using SubGraph = std::function<Var<T>(Tape<T>&, const std::vector<Var<T>>&)>;

// Recomputation: runs fn on a tape that records nothing (its intermediates die at once) and
// records one step that, in the backward, re-runs fn on a recording tape over detached
// copies of the inputs, backpropagates the output gradient through it and adds the input
// gradients. Parameters used inside fn get their gradients directly. Peak memory is then
// the checkpoints plus one sub-graph's intermediates.
template <typename T>
Var<T> checkpoint(Tape<T>& tape, const std::vector<Var<T>>& inputs, const SubGraph<T>& fn) {
  Tape<T> quiet(false);
  Var<T> out = fn(quiet, inputs);
  if (!tape.recording()) return out;
  // The output's data is not needed by the backward; keep only the handle for its grad.
  tape.push([inputs, fn, out]() {
    if (!out->has_grad()) return;
    Tape<T> inner(true);
    std::vector<Var<T>> detached;
    for (const auto& in : inputs) {
      auto c = std::make_shared<Value<T>>();
      c->rows = in->rows;
      c->cols = in->cols;
      c->data = in->data;
      c->requires_grad = in->requires_grad;
      detached.push_back(c);
    }
    Var<T> again = fn(inner, detached);
    T* gd = again->g();
    const T* go = out->grad.data();
    for (int64_t e = 0; e < again->numel(); ++e) gd[e] += go[e];
    inner.run_backward();
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i]->requires_grad || !detached[i]->has_grad()) continue;
      T* gi = inputs[i]->g();
      const T* gs = detached[i]->grad.data();
      for (int64_t e = 0; e < inputs[i]->numel(); ++e) gi[e] += gs[e];
    }
  });
  return out;
}

// One reversible block: Y1 = X1 + F(X2), Y2 = X2 + G(Y1). F and G are sub-graphs of one
// input (the Reformer's attention and feed-forward halves, layer norms included).
template <typename T>
struct RevBlock {
  SubGraph<T> f, g;
};

// A stack of reversible blocks over the two streams (x1, x2). The forward keeps no
// activation of any block: only the final (y1, y2) live on. The backward walks the blocks
// from the last, rebuilding each block's inputs from its outputs (X2 = Y2 - G(Y1),
// X1 = Y1 - F(X2)) and backpropagating through F and G re-run on a recording tape.
// Returns (y1, y2). Gradients equal the stored backward's up to rounding.
template <typename T>
std::pair<Var<T>, Var<T>> reversible_stack(Tape<T>& tape, Var<T> x1, Var<T> x2,
                                           const std::vector<RevBlock<T>>& blocks) {
  const int64_t count = x1->numel();
  auto add_into = [count](Value<T>& dst, const Value<T>& a, const Value<T>& b, T sign) {
    for (int64_t e = 0; e < count; ++e) dst.data[e] = a.data[e] + sign * b.data[e];
  };
  Var<T> a = make_var<T>(x1->rows, x1->cols, true);
  Var<T> b = make_var<T>(x2->rows, x2->cols, true);
  a->data = x1->data;
  b->data = x2->data;
  for (const auto& blk : blocks) {
    Tape<T> quiet(false);
    Var<T> fo = blk.f(quiet, {b});
    add_into(*a, *a, *fo, T(1));  // a = Y1
    fo.reset();
    Var<T> go = blk.g(quiet, {a});
    add_into(*b, *b, *go, T(1));  // b = Y2
  }
  Var<T> y1 = a, y2 = b;
  if (!tape.recording()) return {y1, y2};
  tape.push([x1, x2, y1, y2, blocks, add_into, count]() {
    // Walking back: (cy1, cy2) hold the current block's outputs, (gy1, gy2) their grads.
    auto cy1 = make_var<T>(y1->rows, y1->cols, true);
    auto cy2 = make_var<T>(y2->rows, y2->cols, true);
    cy1->data = y1->data;
    cy2->data = y2->data;
    GradientVector<T> gy1(static_cast<size_t>(count), T(0)), gy2(static_cast<size_t>(count), T(0));
    if (y1->has_grad()) gy1.assign(y1->grad.begin(), y1->grad.end());
    if (y2->has_grad()) gy2.assign(y2->grad.begin(), y2->grad.end());
    for (size_t i = blocks.size(); i-- > 0;) {
      const RevBlock<T>& blk = blocks[i];
      // G: X2 = Y2 - G(Y1); dY1 += dG/dY1^T dY2.
      {
        Tape<T> inner(true);
        auto in = make_var<T>(cy1->rows, cy1->cols, true);
        in->data = cy1->data;
        Var<T> go = blk.g(inner, {in});
        add_into(*cy2, *cy2, *go, T(-1));  // cy2 = X2
        T* gg = go->g();
        for (int64_t e = 0; e < count; ++e) gg[e] = gy2[e];
        go.reset();
        inner.run_backward();
        if (in->has_grad())
          for (int64_t e = 0; e < count; ++e) gy1[e] += in->grad[e];
      }
      // F: X1 = Y1 - F(X2); dX2 = dY2 + dF/dX2^T dY1; dX1 = dY1.
      {
        Tape<T> inner(true);
        auto in = make_var<T>(cy2->rows, cy2->cols, true);
        in->data = cy2->data;
        Var<T> fo = blk.f(inner, {in});
        add_into(*cy1, *cy1, *fo, T(-1));  // cy1 = X1
        T* gf = fo->g();
        for (int64_t e = 0; e < count; ++e) gf[e] = gy1[e];
        fo.reset();
        inner.run_backward();
        if (in->has_grad())
          for (int64_t e = 0; e < count; ++e) gy2[e] += in->grad[e];
      }
    }
    if (x1->requires_grad) {
      T* g = x1->g();
      for (int64_t e = 0; e < count; ++e) g[e] += gy1[e];
    }
    if (x2->requires_grad) {
      T* g = x2->g();
      for (int64_t e = 0; e < count; ++e) g[e] += gy2[e];
    }
  });
  return {y1, y2};
}

}  // namespace attnscope::tape
