// Checks, in order: one model with one input; each layer's name, arguments and shape;
// the train block's settings and data sources; the loss against the model's output shape.
#include "ast/Sema.h"

#include "ast/Args.h"

#include "ir/IR.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>

namespace soma {

namespace {

class Checker {
public:
  Checker(const std::string &baseDir, DiagnosticEngine &diags) : baseDir_(baseDir), diags_(diags), args_(diags) {}

  std::string resolvePath(const std::string &p) {
    std::filesystem::path path(p);
    if (path.is_relative())
      path = std::filesystem::path(baseDir_) / path;
    return path.lexically_normal().string();
  }

  std::optional<DataSpec> data(const ast::Binding &b) {
    const ast::Expr &e = b.value;
    static const std::vector<std::string> sources = {"idx", "csv", "npy"};
    if (e.kind != ast::Expr::Kind::Call || std::find(sources.begin(), sources.end(), e.text) == sources.end()) {
      diags_.report(DiagKind::UnknownFunction, e.kind == ast::Expr::Kind::Call ? e.calleeRange : e.range, "data source",
                    calleeText(e),
                    e.kind == ast::Expr::Kind::Call ? suggest(e.text, sources)
                                                    : "; expected idx(...), csv(...) or npy(...)");
      return std::nullopt;
    }
    DataSpec d;
    d.name = b.name;
    if (e.text == "idx" || e.text == "npy") {
      bool idx = e.text == "idx";
      Signature sig{idx ? "idx" : "npy",
                    {{idx ? "images" : "features", ArgType::String, true}, {"labels", ArgType::String, false}}};
      auto args = args_.bind(sig, e.args, e.range);
      if (!args)
        return std::nullopt;
      d.kind = idx ? DataSpec::Kind::Idx : DataSpec::Kind::Npy;
      d.images = resolvePath((*args)[0]->text);
      if ((*args)[1]) // without: the loss must read no labels (checked with the loss)
        d.labels = resolvePath((*args)[1]->text);
      return d;
    }
    Signature sig{"csv",
                  {{"path", ArgType::String, true},
                   {"label", ArgType::Expr, false},
                   {"header", ArgType::Bool, false},
                   {"columns", ArgType::Expr, false}}};
    auto args = args_.bind(sig, e.args, e.range);
    if (!args)
      return std::nullopt;
    d.kind = DataSpec::Kind::Csv;
    d.images = resolvePath((*args)[0]->text);
    if ((*args)[2])
      d.header = (*args)[2]->text == "true";
    // Columns by index, or by name from the header: the labels one or a list, the features a list.
    auto columns = [&](const ast::Expr *e, bool one, std::vector<int64_t> &indices, std::vector<std::string> &names) {
      bool list = e->kind == ast::Expr::Kind::List, ok = list ? !e->items.empty() : one;
      for (const ast::Expr &c : list ? e->items : std::vector<ast::Expr>{*e}) {
        if (c.kind == ast::Expr::Kind::String && d.header)
          names.push_back(c.text);
        else if (c.kind == ast::Expr::Kind::Number && c.isInteger)
          indices.push_back(static_cast<int64_t>(c.number));
        else
          ok = false;
      }
      return ok && (names.empty() || indices.empty());
    };
    if (const ast::Expr *label = (*args)[1]; label && !columns(label, true, d.labelColumns, d.labelNames)) {
      diags_.report(DiagKind::ArgumentType, label->range, "label", "csv",
                    "a column index, a column name with header: true, or a list of either", kindOf(*label));
      return std::nullopt;
    }
    if (const ast::Expr *features = (*args)[3]; features && !columns(features, false, d.columns, d.columnNames)) {
      diags_.report(DiagKind::ArgumentType, features->range, "columns", "csv",
                    "a list of column indices, or of column names with header: true", kindOf(*features));
      return std::nullopt;
    }
    return d;
  }

  // loss = term (+ term)*;  term = (number *)? mse | mae | huber(delta) | cross_entropy(weight) |
  // binary_cross_entropy, each of a target (label or one_hot(label, n)) and an optional output:
  // a named value of the model (an auxiliary output), the model's output by default.
  bool loss(const ast::Expr &e, const ModelSpec &model, TrainSpec &t) {
    std::vector<std::pair<const ast::Expr *, double>> terms;
    std::vector<const ast::Expr *> pending = {&e};
    t.labelSize = 0;           // until a term reads the labels
    while (!pending.empty()) { // flatten a + b + c, left to right
      const ast::Expr *x = pending.back();
      pending.pop_back();
      if (x->kind == ast::Expr::Kind::Binary && x->op == '+') {
        pending.push_back(&x->items[1]);
        pending.push_back(&x->items[0]);
        continue;
      }
      double weight = 1;
      if (x->kind == ast::Expr::Kind::Binary && x->op == '*') {
        bool numberFirst = x->items[0].kind == ast::Expr::Kind::Number;
        const ast::Expr &number = x->items[numberFirst ? 0 : 1];
        if (number.kind != ast::Expr::Kind::Number || !(number.number > 0)) {
          diags_.report(DiagKind::ArgumentType, number.range, "weight", "loss", "a positive number", kindOf(number));
          return false;
        }
        weight = number.number;
        x = &x->items[numberFirst ? 1 : 0];
      }
      terms.push_back({x, weight});
    }
    for (auto [x, weight] : terms) {
      LossTerm term;
      term.weight = weight;
      term.range = x->range;
      if (!lossTerm(*x, model, term))
        return false;
      if (term.classes > 0 && t.classes > 0 && term.classes != t.classes) {
        diags_.report(DiagKind::LossShape, x->range, x->text,
                      "labels of " + std::to_string(t.classes) + " classes, as the loss's first term",
                      "an output for " + std::to_string(term.classes) + " classes");
        return false;
      }
      if (term.classes > 0)
        t.classes = term.classes;
      // Every term that reads the labels reads the same values a sample.
      if (term.labelValues > 0 && t.labelSize > 0 && term.labelValues != t.labelSize) {
        auto values = [](int64_t n) { return n == 1 ? std::string("one value") : std::to_string(n) + " values"; };
        diags_.report(DiagKind::LabelShape, x->range, x->text, values(term.labelValues), values(t.labelSize));
        return false;
      }
      if (term.labelValues > 0)
        t.labelSize = term.labelValues;
      t.losses.push_back(term);
    }
    return true;
  }

  bool lossTerm(const ast::Expr &e, const ModelSpec &model, LossTerm &t) {
    using A = ArgType;
    struct Loss {
      const char *name;
      LossKind kind;
      std::vector<Param> extra;
    };
    const std::vector<Loss> all = {{"mse", LossKind::MSE, {}},
                                   {"mae", LossKind::MAE, {}},
                                   {"huber", LossKind::Huber, {{"delta", A::PositiveNumber, false}}},
                                   {"cross_entropy", LossKind::CrossEntropy, {{"weight", A::NumberList, false}}},
                                   {"binary_cross_entropy", LossKind::BinaryCrossEntropy, {}}};
    std::vector<std::string> names;
    const Loss *found = nullptr;
    for (const Loss &l : all) {
      names.push_back(l.name);
      if (e.kind == ast::Expr::Kind::Call && e.text == l.name)
        found = &l;
    }
    if (!found) {
      diags_.report(DiagKind::UnknownFunction, e.kind == ast::Expr::Kind::Call ? e.calleeRange : e.range, "loss",
                    calleeText(e), e.kind == ast::Expr::Kind::Call ? suggest(e.text, names) : "");
      return false;
    }
    t.kind = found->kind;
    Signature sig{found->name, {{"target", A::Expr, true}}};
    sig.params.insert(sig.params.end(), found->extra.begin(), found->extra.end());
    sig.params.push_back({"output", A::Expr, false});
    auto args = args_.bind(sig, e.args, e.range);
    if (!args)
      return false;
    const ast::Expr &target = *(*args)[0];
    if (const ast::Expr *output = args->back()) { // an auxiliary output: a named value of the model
      auto it = output->kind == ast::Expr::Kind::Name ? model.values.find(output->text) : model.values.end();
      if (it == model.values.end() || !model.nodes[static_cast<size_t>(it->second)].batched) {
        std::vector<std::string> known;
        for (const auto &[name, node] : model.values)
          known.push_back(name);
        diags_.report(DiagKind::UnknownName, output->range, calleeText(*output),
                      it == model.values.end() ? suggest(calleeText(*output), known)
                                               : "; an output of the loss must be a value of each sample");
        return false;
      }
      t.output = it->second;
    }
    const Dims &out = t.output >= 0 ? model.nodes[static_cast<size_t>(t.output)].dims : model.outputDims();
    if (t.kind == LossKind::Huber && (*args)[1])
      t.huberDelta = (*args)[1]->number;
    const ast::Expr *weight = t.kind == LossKind::CrossEntropy ? (*args)[1] : nullptr;
    if (target.kind == ast::Expr::Kind::Call && target.text == "one_hot") {
      auto oh = args_.bind({"one_hot", {{"value", A::Expr, true}, {"classes", A::PositiveInt, true}}}, target.args,
                           target.range);
      if (!oh)
        return false;
      if (!labelName(*(*oh)[0], model))
        return false;
      t.oneHot = true;
      t.labelValues = 1;
      t.classes = static_cast<int64_t>((*oh)[1]->number);
      if (out != Dims{t.classes}) {
        diags_.report(DiagKind::LossShape, e.range, e.text,
                      "an output of shape [" + std::to_string(t.classes) + "] to match one_hot(label, " +
                          std::to_string(t.classes) + ")",
                      formatDims(out));
        return false;
      }
      return classWeights(weight, t);
    }
    if (target.kind == ast::Expr::Kind::Name && target.text != "label")
      return valueTarget(e, target, model, out, weight, t);
    if (!labelName(target, model))
      return false;
    t.labelValues = 1;
    if (t.kind == LossKind::CrossEntropy) {
      if (out.size() != 1 || out[0] < 2) {
        diags_.report(DiagKind::LossShape, e.range, e.text, "one output per class, a vector [k] with k >= 2",
                      formatDims(out));
        return false;
      }
      t.classes = out[0];
      return classWeights(weight, t);
    }
    // The output compared with the labels value by value: one number, or several a sample
    // (multi-output regression; binary_cross_entropy: several yes-or-no labels).
    for (int64_t d : out)
      t.labelValues *= d;
    if (t.kind == LossKind::BinaryCrossEntropy)
      t.classes = 2; // labels are 0 or 1
    return true;
  }

  bool classWeights(const ast::Expr *weight, LossTerm &t) {
    if (!weight)
      return true;
    if (static_cast<int64_t>(weight->items.size()) != t.classes) {
      diags_.report(DiagKind::ArgumentType, weight->range, "weight", "cross_entropy",
                    "a list of " + std::to_string(t.classes) + " numbers, one per class",
                    "a list of " + std::to_string(weight->items.size()));
      return false;
    }
    for (const ast::Expr &w : weight->items)
      t.classWeights.push_back(w.number);
    return true;
  }

  bool labelName(const ast::Expr &e, const ModelSpec &model) {
    if (e.kind == ast::Expr::Kind::Name && e.text == "label")
      return true;
    std::string text = e.kind == ast::Expr::Kind::Name ? e.text : calleeText(e);
    std::vector<std::string> known = {"label"};
    for (const auto &[name, node] : model.values)
      known.push_back(name);
    std::string hint = suggest(text, known);
    diags_.report(DiagKind::UnknownName, e.range, text,
                  hint.empty() ? "; the target of a loss is 'label', one_hot(label, n) or a value of the model" : hint);
    return false;
  }

  // A target that is a value of the model (an input, or a named value): the output is compared
  // with it element by element (cross_entropy: a distribution over the classes per sample).
  bool valueTarget(const ast::Expr &e, const ast::Expr &target, const ModelSpec &model, const Dims &out,
                   const ast::Expr *weight, LossTerm &t) {
    auto it = model.values.find(target.text);
    if (it == model.values.end())
      return labelName(target, model);
    const GraphNode &n = model.nodes[static_cast<size_t>(it->second)];
    if (!n.batched) {
      diags_.report(DiagKind::ArgumentType, target.range, "target", e.text, "a value of each sample",
                    "'" + target.text + "', a parameter, the same for every sample");
      return false;
    }
    if (n.dims != out) {
      diags_.report(DiagKind::LossShape, e.range, e.text,
                    "a target of the output's shape " + formatDims(out) + " ('" + target.text + "' is " +
                        formatDims(n.dims) + ")",
                    formatDims(out));
      return false;
    }
    if (t.kind == LossKind::CrossEntropy && (out.size() != 1 || out[0] < 2)) {
      diags_.report(DiagKind::LossShape, e.range, e.text, "one output per class, a vector [k] with k >= 2",
                    formatDims(out));
      return false;
    }
    if (weight) {
      diags_.report(DiagKind::ArgumentType, weight->range, "weight", "cross_entropy",
                    "class weights, which need class labels as the target", "a target that is a value of the model");
      return false;
    }
    t.target = it->second;
    return true;
  }

  std::optional<TrainSpec> train(const ast::TrainDecl &td, const ModelSpec &model) {
    TrainSpec t;
    t.range = td.range;
    bool ok = true;
    for (const ast::Binding &d : td.data) {
      if (d.name != "train" && d.name != "test") {
        diags_.report(DiagKind::UnknownName, d.nameRange, d.name, "; data sources are named 'train' or 'test'");
        ok = false;
        continue;
      }
      std::optional<DataSpec> &slot = d.name == "train" ? t.train : t.test;
      if (slot) {
        diags_.report(DiagKind::DuplicateDecl, d.nameRange, "data source", d.name);
        ok = false;
        continue;
      }
      slot = data(d);
      ok &= slot.has_value();
    }
    // Every setting: the type its value must have (Expr: checked by its own function) and what
    // it does with it.
    struct Setting {
      const char *name;
      ArgType type;
      std::function<bool(const ast::Expr &)> apply;
    };
    auto integer = [](int64_t &slot) {
      return [&slot](const ast::Expr &v) { return slot = static_cast<int64_t>(v.number), true; };
    };
    auto number = [](double &slot) { return [&slot](const ast::Expr &v) { return slot = v.number, true; }; };
    auto flag = [](bool &slot) { return [&slot](const ast::Expr &v) { return slot = v.text == "true", true; }; };
    const std::vector<Setting> table = {
        {"loss", ArgType::Expr, [&](const ast::Expr &v) { return loss(v, model, t); }},
        {"optimizer", ArgType::Expr, [&](const ast::Expr &v) { return optimizer(v, t); }},
        {"schedule", ArgType::Expr, [&](const ast::Expr &v) { return schedule(v, t); }},
        {"augment", ArgType::Expr, [&](const ast::Expr &v) { return augment(v, model, t); }},
        {"early_stopping", ArgType::Expr, [&](const ast::Expr &v) { return earlyStopping(v, t); }},
        {"batch", ArgType::PositiveInt, integer(t.batch)},
        {"epochs", ArgType::PositiveInt, integer(t.epochs)},
        {"seed", ArgType::NonNegativeInt,
         [&](const ast::Expr &v) { return t.seed = static_cast<uint64_t>(v.number), true; }},
        {"show_predictions", ArgType::NonNegativeInt, integer(t.showPredictions)},
        {"warmup", ArgType::NonNegativeInt, integer(t.warmupEpochs)},
        {"top_k", ArgType::PositiveInt, integer(t.topK)},
        {"eval_every", ArgType::PositiveInt, integer(t.evalEvery)},
        {"clip_norm", ArgType::PositiveNumber, number(t.clipNorm)},
        {"clip_value", ArgType::PositiveNumber, number(t.clipValue)},
        {"validation", ArgType::Fraction, number(t.validation)},
        {"standardize", ArgType::Bool, flag(t.standardize)},
        {"confusion_matrix", ArgType::Bool, flag(t.confusionMatrix)},
        {"checkpoint", ArgType::String, [&](const ast::Expr &v) {
           if (v.text.empty())
             diags_.report(DiagKind::ArgumentType, v.range, "value", "checkpoint", "a file name", "an empty string");
           t.checkpoint = resolvePath(v.text);
           return !v.text.empty();
         }}};
    std::vector<std::string> keys;
    for (const Setting &setting : table)
      keys.push_back(setting.name);
    std::map<std::string, const ast::Binding *> seen;
    for (const ast::Binding &s : td.settings) {
      const Setting *setting = nullptr;
      for (const Setting &candidate : table)
        if (s.name == candidate.name)
          setting = &candidate;
      if (!setting) {
        diags_.report(DiagKind::UnknownSetting, s.nameRange, s.name, suggest(s.name, keys));
        ok = false;
        continue;
      }
      if (seen.count(s.name)) {
        diags_.report(DiagKind::DuplicateDecl, s.nameRange, "setting", s.name);
        diags_.report(DiagKind::NoteDeclaredHere, seen[s.name]->nameRange);
        ok = false;
        continue;
      }
      seen[s.name] = &s;
      if (!typeMatches(setting->type, s.value)) {
        diags_.report(DiagKind::ArgumentType, s.value.range, "value", s.name, typeName(setting->type), kindOf(s.value));
        ok = false;
        continue;
      }
      if (!floatRepresentable(setting->type, s.value, diags_)) {
        ok = false;
        continue;
      }
      ok &= setting->apply(s.value);
    }
    if (!ok)
      return std::nullopt;
    if (!seen.count("loss")) {
      diags_.report(DiagKind::MissingSetting, td.nameRange, "loss");
      return std::nullopt;
    }
    if (!seen.count("optimizer")) {
      diags_.report(DiagKind::MissingSetting, td.nameRange, "optimizer");
      return std::nullopt;
    }
    if (!t.train) {
      diags_.report(DiagKind::MissingData, td.nameRange, "train");
      return std::nullopt;
    }
    // Data that the loss reads labels from must have them.
    for (const ast::Binding &d : td.data) {
      const std::optional<DataSpec> &spec = d.name == "train" ? t.train : t.test;
      if (t.labelSize > 0 && spec && spec->kind != DataSpec::Kind::Csv && spec->labels.empty()) {
        diags_.report(DiagKind::MissingArgument, d.value.range, d.value.text, "labels");
        ok = false;
      }
    }
    // Measures of classes, when the main loss's target is the labels as classes: accuracy (per
    // label with several yes-or-no labels a sample), top-k and the confusion matrix (one class a
    // sample).
    const LossTerm &main = t.mainLoss();
    bool regression = main.kind == LossKind::MSE || main.kind == LossKind::MAE || main.kind == LossKind::Huber;
    t.accuracy = main.target < 0 && !(regression && main.labelValues > 1);
    bool multiLabel = t.accuracy && main.labelValues > 1;
    if (multiLabel)
      for (const char *name : {"top_k", "confusion_matrix"})
        if (seen.count(name)) {
          diags_.report(DiagKind::ArgumentType, seen[name]->value.range, "value", name, "used with one class a sample",
                        std::to_string(main.labelValues) + " labels a sample");
          ok = false;
        }
    if (!t.accuracy) {
      std::string target = std::to_string(main.labelValues) + " numbers a sample to regress";
      if (main.target >= 0) {
        const GraphNode &n = model.nodes[static_cast<size_t>(main.target)];
        target = "a loss whose target is '" + (n.name.empty() ? n.label : n.name) + "'";
      }
      for (const char *name : {"top_k", "confusion_matrix", "show_predictions"})
        if (seen.count(name)) {
          diags_.report(DiagKind::ArgumentType, seen[name]->value.range, "value", name,
                        "used with class labels as the loss's target", target);
          ok = false;
        }
      if (t.earlyStop.onAccuracy) {
        diags_.report(DiagKind::ArgumentType, seen["early_stopping"]->value.range, "metric", "monitor",
                      "loss when the loss's target is not class labels", target);
        ok = false;
      }
    }
    if (!ok)
      return std::nullopt;
    return t;
  }

  // augment = shift(pixels) | flip() | [shift(2), flip()], for image inputs ([h, w] or [c, h, w])
  bool augment(const ast::Expr &e, const ModelSpec &model, TrainSpec &t) {
    std::vector<const ast::Expr *> items;
    if (e.kind == ast::Expr::Kind::List)
      for (const ast::Expr &i : e.items)
        items.push_back(&i);
    else
      items.push_back(&e);
    if (model.inputDims.size() < 2 || model.inputDims.size() > 3) {
      diags_.report(DiagKind::ArgumentType, e.range, "value", "augment",
                    "used with an image input, [h, w] or [c, h, w]",
                    "an input of shape " + formatDims(model.inputDims));
      return false;
    }
    for (const ast::Expr *i : items) {
      std::string name = i->kind == ast::Expr::Kind::Call || i->kind == ast::Expr::Kind::Name ? i->text : "";
      if (name != "shift" && name != "flip") {
        diags_.report(DiagKind::UnknownFunction, i->kind == ast::Expr::Kind::Call ? i->calleeRange : i->range,
                      "augmentation", calleeText(*i), suggest(name, std::vector<std::string>{"shift", "flip"}));
        return false;
      }
      Signature sig{name == "shift" ? "shift" : "flip", {}};
      if (name == "shift")
        sig.params = {{"pixels", ArgType::PositiveInt, true}};
      std::vector<ast::Arg> none;
      auto args = args_.bind(sig, i->kind == ast::Expr::Kind::Call ? i->args : none, i->range);
      if (!args)
        return false;
      if (name == "shift")
        t.augment.shift = static_cast<int64_t>((*args)[0]->number);
      else
        t.augment.flip = true;
    }
    return true;
  }

  // early_stopping = monitor(loss | accuracy, patience: 5, min_delta: 0, restore_best: true)
  bool earlyStopping(const ast::Expr &e, TrainSpec &t) {
    if (e.kind != ast::Expr::Kind::Call || e.text != "monitor") {
      diags_.report(DiagKind::UnknownFunction, e.kind == ast::Expr::Kind::Call ? e.calleeRange : e.range,
                    "early-stopping rule", calleeText(e), "; expected monitor(loss or accuracy, patience: n)");
      return false;
    }
    Signature sig{"monitor",
                  {{"metric", ArgType::Expr, false},
                   {"patience", ArgType::NonNegativeInt, false},
                   {"min_delta", ArgType::NonNegativeNumber, false},
                   {"restore_best", ArgType::Bool, false}}};
    auto args = args_.bind(sig, e.args, e.range);
    if (!args)
      return false;
    TrainSpec::EarlyStop &s = t.earlyStop;
    s.enabled = true;
    if (const ast::Expr *m = (*args)[0]) {
      if (m->kind != ast::Expr::Kind::Name || (m->text != "loss" && m->text != "accuracy")) {
        diags_.report(DiagKind::ArgumentType, m->range, "metric", "monitor", "loss or accuracy", kindOf(*m));
        return false;
      }
      s.onAccuracy = m->text == "accuracy";
    }
    if ((*args)[1])
      s.patience = static_cast<int64_t>((*args)[1]->number);
    if ((*args)[2])
      s.minDelta = (*args)[2]->number;
    if ((*args)[3])
      s.restoreBest = (*args)[3]->text == "true";
    return true;
  }

  // schedule = constant() | step(every, gamma) | multistep(milestones, gamma) | exponential(gamma)
  //          | cosine(min_lr) | plateau(factor, patience, min_lr)
  bool schedule(const ast::Expr &e, TrainSpec &t) {
    using A = ArgType;
    using K = ScheduleSpec::Kind;
    const Param gamma{"gamma", A::PositiveNumber, false}, minLr{"min_lr", A::NonNegativeNumber, false};
    const std::vector<std::pair<K, Signature>> all = {
        {K::Constant, {"constant", {}}},
        {K::Step, {"step", {{"every", A::PositiveInt, true}, gamma}}},
        {K::MultiStep, {"multistep", {{"milestones", A::NumberList, true}, gamma}}},
        {K::Exponential, {"exponential", {{"gamma", A::PositiveNumber, true}}}},
        {K::Cosine, {"cosine", {minLr}}},
        {K::Plateau, {"plateau", {{"factor", A::UnitInterval, false}, {"patience", A::NonNegativeInt, false}, minLr}}}};
    std::vector<std::string> names;
    const std::pair<K, Signature> *found = nullptr;
    for (const auto &s : all) {
      names.push_back(s.second.name);
      if (e.kind == ast::Expr::Kind::Call && e.text == s.second.name)
        found = &s;
    }
    if (!found) {
      diags_.report(DiagKind::UnknownFunction, e.kind == ast::Expr::Kind::Call ? e.calleeRange : e.range,
                    "learning-rate schedule", calleeText(e),
                    e.kind == ast::Expr::Kind::Call ? suggest(e.text, names)
                                                    : "; expected one of step(...), cosine(), ...");
      return false;
    }
    auto args = args_.bind(found->second, e.args, e.range);
    if (!args)
      return false;
    ScheduleSpec &s = t.schedule;
    s.kind = found->first;
    for (size_t i = 0; i < found->second.params.size(); ++i) {
      const ast::Expr *v = (*args)[i];
      if (!v)
        continue;
      std::string p = found->second.params[i].name;
      if (p == "every")
        s.every = static_cast<int64_t>(v->number);
      else if (p == "gamma")
        s.gamma = v->number;
      else if (p == "min_lr")
        s.minLr = v->number;
      else if (p == "factor")
        s.factor = v->number;
      else if (p == "patience")
        s.patience = static_cast<int64_t>(v->number);
      else if (p == "milestones")
        for (const ast::Expr &m : v->items)
          s.milestones.push_back(static_cast<int64_t>(m.number));
    }
    return true;
  }

  // optimizer = sgd(lr, momentum, nesterov, weight_decay) | adam(...) | adamw(...) | rmsprop(...) | adagrad(...)
  bool optimizer(const ast::Expr &e, TrainSpec &t) {
    using A = ArgType;
    struct Opt {
      const char *name;
      OptimizerKind kind;
      Signature sig;
    };
    const Param lr{"lr", A::PositiveNumber, false}, wd{"weight_decay", A::NonNegativeNumber, false},
        eps{"eps", A::PositiveNumber, false}, beta1{"beta1", A::UnitInterval, false},
        beta2{"beta2", A::UnitInterval, false}, momentum{"momentum", A::UnitInterval, false};
    const std::vector<Opt> opts = {
        {"sgd",
         OptimizerKind::Sgd,
         {"sgd", {{"lr", A::PositiveNumber, true}, momentum, {"nesterov", A::Bool, false}, wd}}},
        {"adam", OptimizerKind::Adam, {"adam", {lr, beta1, beta2, eps, wd}}},
        {"adamw", OptimizerKind::AdamW, {"adamw", {lr, beta1, beta2, eps, wd}}},
        {"rmsprop", OptimizerKind::RmsProp, {"rmsprop", {lr, {"alpha", A::UnitInterval, false}, eps, momentum, wd}}},
        {"adagrad", OptimizerKind::Adagrad, {"adagrad", {lr, eps, wd}}}};
    std::vector<std::string> names;
    const Opt *found = nullptr;
    for (const Opt &o : opts) {
      names.push_back(o.name);
      if (e.kind == ast::Expr::Kind::Call && e.text == o.name)
        found = &o;
    }
    if (!found) {
      diags_.report(DiagKind::UnknownFunction, e.kind == ast::Expr::Kind::Call ? e.calleeRange : e.range, "optimizer",
                    calleeText(e), e.kind == ast::Expr::Kind::Call ? suggest(e.text, names) : "");
      return false;
    }
    auto args = args_.bind(found->sig, e.args, e.range);
    if (!args)
      return false;
    OptimizerSpec o;
    o.kind = found->kind;
    // PyTorch's defaults.
    t.lr = o.kind == OptimizerKind::Adam || o.kind == OptimizerKind::AdamW ? 1e-3 : 1e-2;
    if (o.kind == OptimizerKind::AdamW)
      o.weightDecay = 0.01;
    if (o.kind == OptimizerKind::Adagrad)
      o.eps = 1e-10;
    for (size_t i = 0; i < found->sig.params.size(); ++i) {
      const ast::Expr *v = (*args)[i];
      if (!v)
        continue;
      std::string p = found->sig.params[i].name;
      double x = v->number;
      if (p == "lr")
        t.lr = x;
      else if (p == "momentum")
        o.momentum = x;
      else if (p == "nesterov")
        o.nesterov = v->text == "true";
      else if (p == "weight_decay")
        o.weightDecay = x;
      else if (p == "eps")
        o.eps = x;
      else if (p == "beta1")
        o.beta1 = x;
      else if (p == "beta2")
        o.beta2 = x;
      else if (p == "alpha")
        o.alpha = x;
    }
    t.optimizer = o;
    return true;
  }

private:
  std::string baseDir_;
  DiagnosticEngine &diags_;
  ArgBinder args_;
};

} // namespace

std::optional<Program> checkFile(const ast::File &file, const std::string &baseDir, DiagnosticEngine &diags) {
  Checker checker(baseDir, diags);
  if (file.models.empty()) {
    diags.report(DiagKind::MissingModel, SourceRange{SourceLoc{file.fileId, 0}, SourceLoc{file.fileId, 0}});
    return std::nullopt;
  }
  for (size_t i = 1; i < file.models.size(); ++i) {
    diags.report(DiagKind::DuplicateDecl, file.models[i].nameRange, "model", file.models[i].name);
    return std::nullopt;
  }
  auto model = checkModel(file, file.models[0], diags);
  if (!model)
    return std::nullopt;
  Program program{*model, std::nullopt};
  for (size_t i = 0; i < file.trains.size(); ++i) {
    const ast::TrainDecl &td = file.trains[i];
    if (i > 0) {
      diags.report(DiagKind::DuplicateDecl, td.nameRange, "train block for", td.modelName);
      return std::nullopt;
    }
    if (td.modelName != model->name) {
      diags.report(DiagKind::UnknownModel, td.nameRange, td.modelName, suggest(td.modelName, std::vector{model->name}));
      return std::nullopt;
    }
    program.train = checker.train(td, *model);
    if (!program.train)
      return std::nullopt;
  }
  return program;
}

} // namespace soma
