// Text form of the AST for `soma emit ast`: one node a line, children indented.
#include "ast/AST.h"

#include <fmt/format.h>
#include <ostream>

namespace soma::ast {

namespace {
struct Printer {
  const SourceManager &sm;
  std::ostream &os;

  std::string at(SourceRange r) {
    LineCol lc = sm.lineCol(r.begin);
    return fmt::format("<{}:{}>", lc.line, lc.col);
  }
  void expr(const Expr &e, int depth, const std::string &label) {
    std::string pad(depth * 2, ' ');
    os << pad << label;
    switch (e.kind) {
    case Expr::Kind::Number:
      os << fmt::format("Number {}{} {}\n", fmt::format("{}", e.number), e.isInteger ? " int" : "", at(e.range));
      break;
    case Expr::Kind::String:
      os << fmt::format("String \"{}\" {}\n", e.text, at(e.range));
      break;
    case Expr::Kind::Name:
      os << fmt::format("Name {} {}\n", e.text, at(e.range));
      break;
    case Expr::Kind::Call:
      os << fmt::format("Call {} {}\n", e.text, at(e.range));
      args(e.args, depth + 1);
      break;
    case Expr::Kind::List:
      os << fmt::format("List {}\n", at(e.range));
      for (const Expr &item : e.items)
        expr(item, depth + 1, "");
      break;
    }
  }
  void args(const std::vector<Arg> &as, int depth) {
    for (const Arg &a : as)
      expr(a.value, depth, a.name.empty() ? "" : a.name + ": ");
  }
};
} // namespace

void print(const File &file, const SourceManager &sm, std::ostream &os) {
  Printer p{sm, os};
  for (const ModelDecl &m : file.models) {
    os << fmt::format("Model {} {}\n", m.name, p.at(m.range));
    for (const InputDecl &in : m.inputs) {
      std::string dims;
      for (size_t i = 0; i < in.dims.size(); ++i)
        dims += (i ? ", " : "") + std::to_string(in.dims[i]);
      os << fmt::format("  Input {}: {}[{}] {}\n", in.name, in.dtype, dims, p.at(in.range));
    }
    for (const LayerCall &l : m.layers) {
      os << fmt::format("  Layer {} {}\n", l.name, p.at(l.range));
      p.args(l.args, 2);
    }
  }
  for (const TrainDecl &t : file.trains) {
    os << fmt::format("Train {} {}\n", t.modelName, p.at(t.range));
    for (const Binding &d : t.data)
      p.expr(d.value, 1, "Data " + d.name + " = ");
    for (const Binding &s : t.settings)
      p.expr(s.value, 1, "Set " + s.name + " = ");
  }
}

std::string describe(const Expr &e) {
  switch (e.kind) {
  case Expr::Kind::Number:
    return fmt::format("{}", e.number);
  case Expr::Kind::String:
    return "\"" + e.text + "\"";
  case Expr::Kind::Name:
    return e.text;
  case Expr::Kind::Call:
    return e.text + "(...)";
  case Expr::Kind::List:
    return "[...]";
  }
  return "";
}

} // namespace soma::ast
