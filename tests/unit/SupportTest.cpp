#include "support/Diagnostics.h"

#include <gtest/gtest.h>
#include <sstream>

using namespace soma;

TEST(SourceManager, MapsOffsetsToLinesAndColumns) {
  SourceManager sm;
  uint32_t f = sm.addBuffer("m.soma", "ab\ncde\n\nf");
  EXPECT_EQ(sm.lineCol({f, 0}).line, 1u);
  EXPECT_EQ(sm.lineCol({f, 4}).line, 2u);
  EXPECT_EQ(sm.lineCol({f, 4}).col, 2u);
  EXPECT_EQ(sm.lineCol({f, 8}).line, 4u);
  EXPECT_EQ(sm.lineText({f, 5}), "cde");
  EXPECT_EQ(sm.locAt(f, 2, 3).offset, 5u);
}

TEST(Diagnostics, RendersLocationLineAndCaret) {
  SourceManager sm;
  uint32_t f = sm.addBuffer("m.soma", "model M {\n  dense(x)\n}\n");
  std::ostringstream out;
  DiagnosticEngine d(sm, out);
  d.report(DiagKind::UnknownLayer, {{f, 12}, {f, 17}}, "dense", "");
  EXPECT_EQ(out.str(), "m.soma:2:3: error: unknown layer 'dense' [UnknownLayer]\n  dense(x)\n  ^~~~~\n");
  EXPECT_TRUE(d.hadError());
}

TEST(Diagnostics, SuggestsTheClosestName) {
  std::vector<std::string> names = {"dense", "flatten", "sigmoid"};
  EXPECT_EQ(suggest("dens", names), "; did you mean 'dense'?");
  EXPECT_EQ(suggest("sigmod", names), "; did you mean 'sigmoid'?");
  EXPECT_EQ(suggest("convolution", names), "");
  EXPECT_EQ(editDistance("kitten", "sitting"), 3u);
}
