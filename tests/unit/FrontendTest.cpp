#include "ast/Sema.h"
#include "frontend/Parser.h"

#include <gtest/gtest.h>
#include <sstream>

using namespace soma;

namespace {
struct Parsed {
  SourceManager sm;
  std::ostringstream errs;
  DiagnosticEngine diags{sm, errs};
  std::optional<ast::File> file;
  std::optional<Program> program;
  explicit Parsed(const std::string &text) {
    uint32_t id = sm.addBuffer("t.soma", text);
    file = parseFile(id, sm, diags);
    if (file)
      program = checkFile(*file, "/data", diags);
  }
};

const char *kModel = R"(
model M {
  input x: f32[4, 5]  # comment
  flatten
  dense(units: 3) -> relu
  dense(2) -> softmax
}
train M {
  data train = csv("d.csv", label: 0, header: true)
  loss = cross_entropy(label)
  optimizer = sgd(lr: 1e-2)
  batch = 8
}
)";
} // namespace

TEST(Frontend, ParsesAndChecksAModel) {
  Parsed p(kModel);
  ASSERT_TRUE(p.program) << p.errs.str();
  const ModelSpec &m = p.program->model;
  EXPECT_EQ(m.inputDims, (Dims{4, 5}));
  ASSERT_EQ(m.nodes.size(), 6u); // the input and five layers
  EXPECT_EQ(m.nodes[2].kind, GraphNode::Kind::Layer);
  EXPECT_EQ(m.nodes[2].layer.kind, LayerKind::Dense);
  EXPECT_EQ(m.nodes[2].dims, (Dims{3}));
  EXPECT_EQ(m.nodes[2].paramCount, 20 * 3 + 3);
  ASSERT_EQ(m.params.size(), 4u);
  EXPECT_EQ(m.params[0].name, "dense_1.w");
  EXPECT_EQ(m.params[0].dims, (Dims{20, 3}));
  EXPECT_EQ(m.outputDims(), (Dims{2}));
  const TrainSpec &t = *p.program->train;
  EXPECT_DOUBLE_EQ(t.lr, 0.01);
  EXPECT_EQ(t.batch, 8);
  EXPECT_EQ(t.train->images, "/data/d.csv");
  EXPECT_EQ(t.train->labelColumns, std::vector<int64_t>{0});
  EXPECT_TRUE(t.train->header);
  EXPECT_EQ(t.classes, 2);
}

// How many label values a sample the loss reads: one class, k values compared with an output of
// k, or none (the target is a value of the model).
TEST(Frontend, LossesReadLabelsOfTheirShape) {
  auto labelSize = [](const std::string &loss, const std::string &data = "csv(\"d.csv\")") {
    Parsed p("model M { input x: f32[4] h = x -> dense(6) x -> dense(3) }\n"
             "train M { data train = " +
             data + " loss = " + loss + " optimizer = sgd(lr: 0.1) }");
    return p.program && p.program->train ? p.program->train->labelSize : -1;
  };
  EXPECT_EQ(labelSize("cross_entropy(label)"), 1);
  EXPECT_EQ(labelSize("mse(one_hot(label, 3))"), 1);
  EXPECT_EQ(labelSize("mse(label)"), 3);
  EXPECT_EQ(labelSize("binary_cross_entropy(label) + mae(label)"), 3);
  EXPECT_EQ(labelSize("mse(label, output: h)"), 6);
  EXPECT_EQ(labelSize("mse(h, output: h)"), 0);
  EXPECT_EQ(labelSize("mse(label) + mse(label, output: h)"), -1); // 3 values, then 6
  EXPECT_EQ(labelSize("mse(h, output: h)", "npy(\"x.npy\")"), 0);
  EXPECT_EQ(labelSize("mse(label)", "npy(\"x.npy\")"), -1); // the loss reads labels the data lacks
}

TEST(Frontend, SyntaxErrorsAreDiagnostics) {
  Parsed p("model M { input x: f32[3] dense(3 }");
  EXPECT_FALSE(p.file);
  EXPECT_NE(p.errs.str().find("t.soma:1:"), std::string::npos) << p.errs.str();
  EXPECT_NE(p.errs.str().find("[SyntaxError]"), std::string::npos);
}

TEST(Frontend, ShapeMismatchNamesLayerAndShape) {
  Parsed p("model M { input x: f32[28, 28] dense(10) }");
  EXPECT_FALSE(p.program);
  EXPECT_NE(p.errs.str().find("layer 'dense' expects a vector [n]"), std::string::npos) << p.errs.str();
  EXPECT_NE(p.errs.str().find("[28, 28]"), std::string::npos);
}

TEST(Frontend, NumbersWithExponentsAndNegatives) {
  Parsed p("model M { input x: f32[2] dense(1) } train M { data train = csv(\"a\") loss = mse(label) "
           "optimizer = sgd(lr: 2.5E-3) seed = 0 }");
  ASSERT_TRUE(p.program) << p.errs.str();
  EXPECT_DOUBLE_EQ(p.program->train->lr, 2.5e-3);
  EXPECT_EQ(p.program->train->seed, 0u);
}
