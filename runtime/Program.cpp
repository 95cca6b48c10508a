// A built model's two faces: the command line of an executable (train, eval, predict) and the C
// library behind a model's header. Both read the model's description from its soma_program
// record and run the same training loop as `soma run`.
#include "soma/Checkpoint.h"
#include "soma/Format.h"
#include "soma/Train.h"
#include "soma/runtime.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>

using namespace soma::rt;

namespace {

Entries entriesOf(const soma_program *p) { return {p->forward, p->train_step}; }

std::string baseName(const char *argv0) {
  const char *slash = std::strrchr(argv0, '/');
  return slash ? slash + 1 : argv0;
}

void printHelp(const ModelInfo &m, const std::string &program, std::FILE *to) {
  std::string train = m.config ? "" : " (this model has no train block)";
  std::string data;
  if (m.config && m.config->train)
    data = "  train data: " + m.config->train->images +
           (m.config->test ? ", test data: " + m.config->test->images : "") + "\n";
  std::fprintf(to,
               "usage: %s <command> [options]\n\n"
               "Model '%s', compiled by Soma into native code: input '%s' f32%s, output f32%s.\n%s\n"
               "commands:\n"
               "  train [options]                 train from fresh weights%s\n"
               "  eval --weights FILE             the test (or validation, or training) data's loss and accuracy\n"
               "  predict --weights FILE INPUT    each sample's class and its probability (its outputs when\n"
               "                                  the loss's target is not the labels); INPUT is an IDX,\n"
               "                                  CSV or .npy file of samples\n\n"
               "options for train:\n%s\n"
               "options for eval: --weights FILE, --data NAME=PATH, --batch N, --threads N\n"
               "options for predict: --weights FILE, --output FILE.npy (every output instead of the\n"
               "  classes), --batch N, --threads N, --data train=PATH (for a model that standardizes its\n"
               "  inputs: the training data behind the statistics)\n",
               program.c_str(), m.name.c_str(), m.inputName.c_str(), formatDims(m.inputDims).c_str(),
               formatDims(m.outputDims).c_str(), data.c_str(), train.c_str(), kRunFlagsHelp);
}

int usage(const std::string &program, const std::string &msg) {
  std::fprintf(stderr, "%s: error: %s\n(run '%s --help' for usage)\n", program.c_str(), msg.c_str(), program.c_str());
  return 2;
}

} // namespace

extern "C" int soma_rt_main(const soma_program *program, int argc, char **argv) {
  std::string name = baseName(argc > 0 ? argv[0] : "model");
  ModelInfo m;
  if (std::string e = parseModel(program->model, static_cast<size_t>(program->model_size), m); !e.empty()) {
    std::fprintf(stderr, "%s: error: %s\n", name.c_str(), e.c_str());
    return 1;
  }
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    printHelp(m, name, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string &command = args[0];
  if (command != "train" && command != "eval" && command != "predict")
    return usage(name, "unknown command '" + command + "'; expected train, eval or predict");
  RunOptions run;
  PredictOptions predict;
  std::vector<std::string> positional;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string &a = args[i];
    if (a == "--help" || a == "-h") {
      printHelp(m, name, stdout);
      return 0;
    }
    if (command == "predict" && a == "--output") {
      if (i + 1 >= args.size() || args[i + 1].empty())
        return usage(name, "--output needs a file name");
      predict.outputPath = args[++i];
      continue;
    }
    // eval and predict take the flags that choose weights, data and threads; train takes all.
    bool allowed = command == "train" || a == "--weights" || a == "--batch" || a == "--threads" || a == "--data";
    if (a.size() > 1 && a[0] == '-' && !allowed)
      return usage(name, "unknown option '" + a + "' for '" + command + "'");
    int r = parseRunFlag(args, i, run, name.c_str());
    if (r < 0)
      return 2;
    if (r == 0) {
      if (a.size() > 1 && a[0] == '-')
        return usage(name, "unknown option '" + a + "' for '" + command + "'");
      positional.push_back(a);
    }
  }
  if (command == "predict") {
    if (positional.size() != 1)
      return usage(name,
                   positional.empty() ? "predict needs an INPUT file of samples" : "predict takes one INPUT file");
    if (run.weightsPath.empty())
      return usage(name, "predict needs --weights FILE");
    predict.input = positional[0];
    predict.weightsPath = run.weightsPath;
    if (run.batch)
      predict.batch = *run.batch;
    predict.threads = run.threads;
    predict.data = run.data; // --data train=PATH: the training data behind the statistics
    return runPredict(m, entriesOf(program), predict);
  }
  if (!positional.empty())
    return usage(name, "unexpected argument '" + positional[0] + "'");
  if (command == "eval") {
    if (run.weightsPath.empty())
      return usage(name, "eval needs --weights FILE");
    run.evalOnly = true;
  }
  if (std::string e = checkRunOptions(run); !e.empty())
    return usage(name, e);
  if (!m.config) {
    std::fprintf(stderr, "%s: error: model '%s' has no train block: it can only predict\n", name.c_str(),
                 m.name.c_str());
    return 1;
  }
  return runTraining(m, entriesOf(program), run);
}

struct soma_rt_model {
  ModelInfo info;
  std::unique_ptr<Session> session;
  std::string error;
};

namespace {

// Why the last create on this thread returned NULL: soma_rt_error(NULL) reads it.
thread_local std::string lastCreateError;

int fail(soma_rt_model *m, std::string error) {
  m->error = std::move(error);
  return -1;
}

} // namespace

extern "C" soma_rt_model *soma_rt_create(const soma_program *program, int64_t max_batch) {
  auto m = std::unique_ptr<soma_rt_model>(new (std::nothrow) soma_rt_model);
  if (!m) {
    lastCreateError = "create: out of memory";
    return nullptr;
  }
  if (std::string e = parseModel(program->model, static_cast<size_t>(program->model_size), m->info); !e.empty()) {
    lastCreateError = "create: " + e;
    return nullptr;
  }
  if (std::string e = Session::create(m->info, entriesOf(program), max_batch, m->session); !e.empty()) {
    lastCreateError = "create: max_batch " + std::to_string(max_batch) + ": " + e;
    return nullptr;
  }
  m->session->initParams(1);
  lastCreateError.clear();
  return m.release();
}

extern "C" void soma_rt_destroy(soma_rt_model *m) { delete m; }

extern "C" const char *soma_rt_error(const soma_rt_model *m) {
  return m ? m->error.c_str() : lastCreateError.empty() ? "no model (NULL)" : lastCreateError.c_str();
}

extern "C" int64_t soma_rt_input_size(const soma_rt_model *m) { return m ? m->info.sampleSize() : -1; }

extern "C" int64_t soma_rt_output_size(const soma_rt_model *m) { return m ? m->info.outputs : -1; }

extern "C" int soma_rt_lib_set_threads(int threads) {
  if (threads < 1 || threads > kMaxThreads)
    return -1;
  try {
    soma_rt_set_threads(threads);
  } catch (const std::exception &) { // the system refused to start threads
    soma_rt_set_threads(1);
    return -1;
  }
  return 0;
}

extern "C" int soma_rt_init(soma_rt_model *m, uint64_t seed) {
  if (!m)
    return -1;
  m->session->initParams(seed);
  m->error.clear();
  return 0;
}

extern "C" int soma_rt_load_weights(soma_rt_model *m, const char *path) {
  if (!m)
    return -1;
  if (!path)
    return fail(m, "load_weights: path is NULL");
  if (std::string e = loadWeights(path ? path : "", *m->session); !e.empty())
    return fail(m, e);
  m->error.clear();
  return 0;
}

extern "C" int soma_rt_save_weights(soma_rt_model *m, const char *path) {
  if (!m)
    return -1;
  if (!path)
    return fail(m, "save_weights: path is NULL");
  if (std::string e = saveWeights(path ? path : "", *m->session); !e.empty())
    return fail(m, e);
  m->error.clear();
  return 0;
}

extern "C" int soma_rt_predict(soma_rt_model *m, const float *x, int64_t n, float *out) {
  if (!m)
    return -1;
  if (n < 0 || (n > 0 && (!x || !out)))
    return fail(m, "predict: needs n >= 0 and the x and out arrays");
  Session &s = *m->session;
  int64_t size = m->info.sampleSize(), k = m->info.outputs;
  for (int64_t from = 0; from < n; from += s.maxBatch()) {
    int64_t rows = std::min(s.maxBatch(), n - from);
    std::copy_n(x + from * size, rows * size, s.x());
    std::fill_n(s.labels(), rows * m->info.labelSlots(), 0.0f);
    s.forward(rows);
    std::copy_n(s.output(), rows * k, out + from * k);
  }
  m->error.clear();
  return 0;
}

extern "C" int soma_rt_train_step(soma_rt_model *m, const float *x, const float *labels, int64_t n, float lr,
                                  float *loss) {
  if (!m)
    return -1;
  Session &s = *m->session;
  if (!(lr > 0) || !std::isfinite(lr))
    return fail(m, soma::rt::format("train_step: lr must be a positive, finite number, got {}", lr));
  if (!m->info.train)
    return fail(m, "train_step: model '" + m->info.name + "' has no train block");
  // labels: n * labelSize values (none when no loss reads them: labels may then be NULL)
  int64_t labelSize = m->info.config ? m->info.config->labelSize : 1;
  if (n < 1 || n > s.maxBatch() || !x || (!labels && labelSize > 0))
    return fail(m, soma::rt::format("train_step: needs 1 to {} samples (the max_batch given to create), got {}",
                                    s.maxBatch(), n));
  if (m->info.config && m->info.config->classes > 0)
    for (int64_t i = 0; i < n * labelSize; ++i)
      if (!(labels[i] >= 0 && labels[i] < static_cast<float>(m->info.config->classes)) ||
          labels[i] != static_cast<float>(static_cast<int64_t>(labels[i])))
        return fail(m, soma::rt::format("train_step: label {} of sample {} is not a class from 0 to {}", labels[i],
                                        i / labelSize, m->info.config->classes - 1));
  std::copy_n(x, n * m->info.sampleSize(), s.x());
  if (labelSize > 0)
    std::copy_n(labels, n * labelSize, s.labels());
  float value = s.trainStep(n, lr);
  if (loss)
    *loss = value;
  m->error.clear();
  return 0;
}
