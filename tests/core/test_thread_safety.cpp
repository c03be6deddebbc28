// Thread safety (docs/API.md, "Thread safety"): one model shared by several inference threads
// under NoGradGuard gives the serial results bit for bit; one thread trains while another
// evaluates a copy; grad mode, autocast and the sdpa backend choice are per thread; the
// default generator hands every op a range of its own; ops that use the intra-op pool run
// from several threads at once, with set_num_threads called meanwhile. The ThreadSanitizer
// build (FOCUS_TSAN, tools/test) runs this suite, where a data race is a failure.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "core/ops/attention.h"
#include "models/gpt/gpt.h"
#include "test_util.h"

using namespace focus;
using models::GPT;
using models::GPTConfig;

namespace {

// Restores the thread setting at the end of a test.
struct ThreadsGuard {
  int saved = get_num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

// Bit for bit: same shape, dtype and values (as doubles: float32 widens exactly).
bool same(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  return std::equal(x.begin(), x.end(), y.begin(), [](double u, double v) { return u == v || (u != u && v != v); });
}

// Runs fn(t) on n threads at once and joins them. Each thread starts at a barrier, so their
// work overlaps rather than running one after another.
void on_threads(int n, const std::function<void(int)>& fn) {
  std::barrier start(n);
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t)
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      fn(t);
    });
  for (auto& th : threads) th.join();
}

// Big enough that its products and attention split over the pool (gemm.h, attention.cpp)
// and small enough for the ThreadSanitizer build.
GPTConfig small_gpt() { return GPTConfig().n_layer(2).n_head(4).n_embd(64).block_size(32).vocab_size(64); }

// Each thread's results: std::vector is not written by two threads at once, each slot by one.
template <class T> using PerThread = std::vector<std::vector<T>>;

}  // namespace

TEST_SUITE("thread_safety") {
  TEST_CASE("inference on one shared model from several threads under NoGradGuard equals serial runs") {
    ThreadsGuard guard;
    set_num_threads(2);
    constexpr int kThreads = 4, kPerThread = 3;
    Generator gen(11);
    GPT model(small_gpt(), &gen);
    model.eval();
    std::vector<Tensor> inputs;
    for (int i = 0; i < kThreads * kPerThread; ++i) inputs.push_back(randint(0, 64, {4, 32}, kInt64, &gen));
    std::vector<uint64_t> versions;
    for (const Tensor& p : model.parameters()) versions.push_back(p.version());

    std::vector<Tensor> serial;
    std::vector<std::vector<int64_t>> serial_tokens;
    {
      NoGradGuard no_grad;
      for (const Tensor& x : inputs) serial.push_back(model(x));
    }
    for (int t = 0; t < kThreads; ++t) {
      Generator g(100 + static_cast<uint64_t>(t));
      serial_tokens.push_back(model.generate({1, 2, 3}, 6, models::SampleOptions().top_k(5), &g));
    }

    PerThread<Tensor> got(kThreads);
    std::vector<std::vector<int64_t>> tokens(kThreads);
    on_threads(kThreads, [&](int t) {
      NoGradGuard no_grad;
      for (int k = 0; k < kPerThread; ++k) got[static_cast<size_t>(t)].push_back(model(inputs[static_cast<size_t>(t * kPerThread + k)]));
      // Sampling with a generator of the thread's own: its tokens do not depend on the others.
      Generator g(100 + static_cast<uint64_t>(t));
      tokens[static_cast<size_t>(t)] = model.generate({1, 2, 3}, 6, models::SampleOptions().top_k(5), &g);
    });
    for (int t = 0; t < kThreads; ++t) {
      INFO("thread " << t);
      for (int k = 0; k < kPerThread; ++k) {
        const Tensor& y = got[static_cast<size_t>(t)][static_cast<size_t>(k)];
        CHECK_FALSE(y.requires_grad());
        CHECK(same(y, serial[static_cast<size_t>(t * kPerThread + k)]));
      }
      CHECK(tokens[static_cast<size_t>(t)] == serial_tokens[static_cast<size_t>(t)]);
    }
    // Inference wrote nothing into the shared model.
    size_t i = 0;
    for (const Tensor& p : model.parameters()) {
      CHECK(p.version() == versions[i++]);
      CHECK_FALSE(p.grad().defined());
    }
  }

  TEST_CASE("one thread trains a model while another evaluates copies of it") {
    // The pattern: the trainer copies the weights between steps (state_dict values cloned on
    // its own thread) and hands them over; the evaluator loads them into a model of its own.
    // Nobody reads the trained model while its optimizer writes it.
    ThreadsGuard guard;
    set_num_threads(2);
    constexpr int kSteps = 4;
    const GPTConfig cfg = small_gpt().dropout(0.1);
    Generator data_gen(5);
    const Tensor corpus = randint(0, 64, {2000}, kInt64, &data_gen);
    const Tensor eval_x = randint(0, 64, {4, 32}, kInt64, &data_gen), eval_y = randint(0, 64, {4, 32}, kInt64, &data_gen);
    // Batches are collated on the DataLoader's prefetch thread (index ops on the pool too).
    std::vector<int64_t> starts;
    for (int64_t s = 0; s + 33 <= 2000; s += 37) starts.push_back(s);
    auto dataset = std::make_shared<data::VectorDataset<int64_t>>(starts);
    auto collate = [corpus](std::vector<int64_t> ss) {
      std::vector<Tensor> xs, ys;
      for (int64_t s : ss) {
        xs.push_back(corpus.narrow(0, s, 32));
        ys.push_back(corpus.narrow(0, s + 1, 32));
      }
      return std::pair<Tensor, Tensor>(stack(xs), stack(ys));
    };

    // Trains a fresh model for kSteps; after each step, snapshot(state) gets a copy of its weights.
    auto train = [&](const std::function<void(TensorDict)>& snapshot) {
      manual_seed(21);  // dropout's draws; the evaluator draws none (eval mode)
      Generator init(3);
      GPT model(cfg, &init);
      optim::AdamW opt(model.parameters(), optim::AdamWOptions(1e-3));
      data::DataLoader<int64_t, std::pair<Tensor, Tensor>> loader(dataset, collate,
                                                                  data::DataLoaderOptions(4).prefetch(2));
      std::vector<float> losses;
      for (auto& [x, y] : loader) {
        if (static_cast<int>(losses.size()) == kSteps) break;
        opt.zero_grad();
        Tensor loss = GPT::loss(model(x), y);
        loss.backward();
        opt.step();
        losses.push_back(loss.item<float>());
        TensorDict copy;
        for (const auto& [k, v] : model.state_dict()) copy.insert(k, v.clone());
        snapshot(std::move(copy));
      }
      return losses;
    };
    auto evaluate = [&](GPT& m, const TensorDict& weights) {
      m.load_state_dict(weights);
      NoGradGuard no_grad;
      return GPT::loss(m(eval_x), eval_y).item<float>();
    };

    // Serial: train, then evaluate every snapshot.
    std::vector<TensorDict> serial_snaps;
    const std::vector<float> serial_losses = train([&](TensorDict d) { serial_snaps.push_back(std::move(d)); });
    REQUIRE(serial_losses.size() == static_cast<size_t>(kSteps));
    Generator other(4);
    GPT serial_eval_model(cfg, &other);
    serial_eval_model.eval();
    std::vector<float> serial_evals;
    for (const TensorDict& d : serial_snaps) serial_evals.push_back(evaluate(serial_eval_model, d));

    // Concurrent: the evaluator thread takes each snapshot as soon as it is made.
    std::mutex mu;
    std::condition_variable cv;
    std::deque<TensorDict> queue;
    bool done = false;
    std::vector<float> evals;
    // Built before training starts: building a model draws from the default generator (each
    // layer's own init, then GPT's), which would shift the trainer's dropout draws.
    Generator g(4);
    GPT copy(cfg, &g);
    copy.eval();
    std::thread evaluator([&] {
      for (;;) {
        TensorDict d;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return !queue.empty() || done; });
          if (queue.empty()) return;
          d = std::move(queue.front());
          queue.pop_front();
        }
        evals.push_back(evaluate(copy, d));
      }
    });
    const std::vector<float> losses = train([&](TensorDict d) {
      {
        std::lock_guard<std::mutex> lock(mu);
        queue.push_back(std::move(d));
      }
      cv.notify_one();
    });
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
    cv.notify_one();
    evaluator.join();
    CHECK(losses == serial_losses);
    CHECK(evals == serial_evals);
  }

  TEST_CASE("grad mode, autocast and the sdpa backend choice are per thread, as in PyTorch") {
    const Tensor x = randn({4, 4}).requires_grad_();
    std::barrier sync(2);
    bool a_grad = true, a_enabled = true, b_grad = false, b_enabled = false;
    DType a_dtype = kFloat32, b_dtype = kFloat32;
    bool a_flash_allowed = true, b_flash_allowed = false;
    std::thread a([&] {
      NoGradGuard no_grad;
      AutocastGuard autocast(Device::cpu(), kBFloat16);
      SdpaKernelGuard math_only({SDPBackend::Math});
      sync.arrive_and_wait();  // thread b runs while these guards are alive
      const Tensor y = matmul(x, x);
      a_grad = y.requires_grad();
      a_dtype = y.dtype();
      a_enabled = GradMode::is_enabled();
      a_flash_allowed = sdp_backend_allowed(SDPBackend::FlashAttention);
      sync.arrive_and_wait();
    });
    std::thread b([&] {
      sync.arrive_and_wait();
      const Tensor y = matmul(x, x);
      b_grad = y.requires_grad();
      b_dtype = y.dtype();
      b_enabled = GradMode::is_enabled();
      b_flash_allowed = sdp_backend_allowed(SDPBackend::FlashAttention);
      sync.arrive_and_wait();
    });
    a.join();
    b.join();
    CHECK_FALSE(a_grad);
    CHECK_FALSE(a_enabled);
    CHECK(a_dtype == kBFloat16);
    CHECK_FALSE(a_flash_allowed);
    CHECK(b_grad);
    CHECK(b_enabled);
    CHECK(b_dtype == kFloat32);
    CHECK(b_flash_allowed);
    CHECK(GradMode::is_enabled());  // this thread's mode is untouched

    // A thread starts with grad mode on, whatever the thread that started it had.
    NoGradGuard no_grad;
    bool child_enabled = false;
    std::thread child([&] { child_enabled = GradMode::is_enabled(); });
    child.join();
    CHECK(child_enabled);
    CHECK_FALSE(GradMode::is_enabled());
  }

  TEST_CASE("the default generator gives each op a range of its own when threads draw at once") {
    constexpr int kThreads = 4, kDraws = 8;
    manual_seed(7);
    std::vector<Tensor> serial;
    for (int i = 0; i < kThreads * kDraws; ++i) serial.push_back(randn({64}));
    const RandomState serial_end = default_generator().get_state();

    manual_seed(7);
    PerThread<Tensor> got(kThreads);
    on_threads(kThreads, [&](int t) {
      for (int i = 0; i < kDraws; ++i) got[static_cast<size_t>(t)].push_back(randn({64}));
    });
    const RandomState end = default_generator().get_state();
    CHECK(end.seed == serial_end.seed);
    CHECK(end.offset == serial_end.offset);
    // Which thread got which numbers depends on the interleaving (as with PyTorch's default
    // generator), but every draw is one of the serial draws, and no two threads got the same.
    std::vector<int> used(serial.size(), 0);
    for (const auto& list : got)
      for (const Tensor& y : list) {
        const auto it = std::find_if(serial.begin(), serial.end(), [&](const Tensor& s) { return same(s, y); });
        REQUIRE(it != serial.end());
        ++used[static_cast<size_t>(it - serial.begin())];
      }
    CHECK(std::all_of(used.begin(), used.end(), [](int n) { return n == 1; }));

    // A generator per thread: the same numbers whatever the other threads do.
    PerThread<Tensor> own(kThreads);
    on_threads(kThreads, [&](int t) {
      Generator g(static_cast<uint64_t>(t));
      for (int i = 0; i < kDraws; ++i) own[static_cast<size_t>(t)].push_back(randn({64}, {}, &g));
    });
    for (int t = 0; t < kThreads; ++t) {
      Generator g(static_cast<uint64_t>(t));
      for (int i = 0; i < kDraws; ++i) CHECK(same(own[static_cast<size_t>(t)][static_cast<size_t>(i)], randn({64}, {}, &g)));
    }
  }

  TEST_CASE("ops that use the intra-op pool, called from several threads at once, give the serial results") {
    ThreadsGuard guard;
    set_num_threads(2);
    constexpr int kThreads = 4, kRounds = 3;
    Generator gen(9);
    const Tensor a = randn({160, 96}, {}, &gen), b = randn({96, 200}, {}, &gen);  // a split product
    const Tensor big = randn({64, 1024}, {}, &gen);                              // split elementwise, rows
    const Tensor q = randn({4, 4, 48, 16}, {}, &gen), k = randn({4, 4, 48, 16}, {}, &gen),
                 v = randn({4, 4, 48, 16}, {}, &gen);  // attention split over batch x heads
    const Tensor w = randn({1024}, {}, &gen);
    auto compute = [&] {
      NoGradGuard no_grad;
      return std::vector<Tensor>{matmul(a, b), gelu(big * 2.0 + 1.0), softmax(big, -1), sum(big, {1}),
                                 layer_norm(big, {1024}, w), scaled_dot_product_attention(q, k, v, {}, 0.0, true),
                                 sum(big)};
    };
    const std::vector<Tensor> serial = compute();
    PerThread<std::vector<Tensor>> got(kThreads);
    on_threads(kThreads, [&](int t) {
      for (int r = 0; r < kRounds; ++r) got[static_cast<size_t>(t)].push_back(compute());
    });
    for (int t = 0; t < kThreads; ++t)
      for (int r = 0; r < kRounds; ++r)
        for (size_t i = 0; i < serial.size(); ++i) {
          INFO("thread " << t << ", round " << r << ", result " << i);
          CHECK(same(got[static_cast<size_t>(t)][static_cast<size_t>(r)][i], serial[i]));
        }

    // set_num_threads from another thread while ops run: a split may change between ops (so
    // the results agree to rounding), never within one.
    std::atomic<bool> stop{false};
    std::thread changer([&] {
      for (int n = 0; !stop.load(); ++n) {
        set_num_threads(1 + n % 3);
        std::this_thread::yield();
      }
    });
    PerThread<std::vector<Tensor>> mixed(2);
    on_threads(2, [&](int t) {
      for (int r = 0; r < kRounds; ++r) mixed[static_cast<size_t>(t)].push_back(compute());
    });
    stop.store(true);
    changer.join();
    for (const auto& list : mixed)
      for (const auto& results : list)
        for (size_t i = 0; i < serial.size(); ++i) {
          INFO("result " << i);
          CHECK(focus::testing::allclose(results[i], serial[i], 1e-5, 1e-5));
        }
  }
  TEST_CASE("forward and backward with grad on a shared model from several threads: the gradients add up") {
    // As in PyTorch: recording ops on shared parameters is safe, and each backward adds into
    // the same .grad under a lock, so the result is the sum over the threads (in some order:
    // equal to rounding). Optimizer steps and zero_grad must not overlap them.
    ThreadsGuard guard;
    set_num_threads(2);
    constexpr int kThreads = 4;
    Generator gen(13);
    GPT model(small_gpt(), &gen);
    model.eval();
    std::vector<Tensor> xs, ys;
    for (int t = 0; t < kThreads; ++t) {
      xs.push_back(randint(0, 64, {2, 32}, kInt64, &gen));
      ys.push_back(randint(0, 64, {2, 32}, kInt64, &gen));
    }
    std::vector<float> serial_losses;
    for (int t = 0; t < kThreads; ++t) {
      Tensor loss = GPT::loss(model(xs[static_cast<size_t>(t)]), ys[static_cast<size_t>(t)]);
      loss.backward();
      serial_losses.push_back(loss.item<float>());
    }
    std::vector<Tensor> serial_grads;
    for (const Tensor& p : model.parameters()) serial_grads.push_back(p.grad().clone());
    model.zero_grad();

    std::vector<float> losses(kThreads);
    on_threads(kThreads, [&](int t) {
      Tensor loss = GPT::loss(model(xs[static_cast<size_t>(t)]), ys[static_cast<size_t>(t)]);
      loss.backward();
      losses[static_cast<size_t>(t)] = loss.item<float>();
    });
    CHECK(losses == serial_losses);
    size_t i = 0;
    for (const Tensor& p : model.parameters()) {
      REQUIRE(p.grad().defined());
      CHECK(focus::testing::allclose(p.grad(), serial_grads[i++], 1e-4, 1e-6));
    }
  }
}
