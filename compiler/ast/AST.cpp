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
    case Expr::Kind::Unary:
      os << fmt::format("Unary {} {}\n", e.op, at(e.range));
      expr(e.items[0], depth + 1, "");
      break;
    case Expr::Kind::Binary:
      os << fmt::format("Binary {} {}\n", e.op == '>' ? std::string("->") : std::string(1, e.op), at(e.range));
      expr(e.items[0], depth + 1, "");
      expr(e.items[1], depth + 1, "");
      break;
    }
  }
  void stmts(const std::vector<Stmt> &body, int depth) {
    std::string pad(depth * 2, ' ');
    for (const Stmt &s : body) {
      switch (s.kind) {
      case Stmt::Kind::Value:
        expr(s.value, depth, s.target.empty() ? "Chain " : "Let " + s.target + " = ");
        break;
      case Stmt::Kind::Return:
        expr(s.value, depth, "Return ");
        break;
      case Stmt::Kind::Param:
        os << fmt::format("{}Param {} {}\n", pad, s.target, at(s.range));
        for (const Expr &d : s.dims)
          expr(d, depth + 1, "dim: ");
        expr(s.value, depth + 1, "init: ");
        break;
      }
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
  for (const LayerDecl &l : file.layers) {
    os << fmt::format("LayerDef {} {}\n", l.name, p.at(l.range));
    for (const Formal &f : l.formals) {
      if (f.hasDefault)
        p.expr(f.defaultValue, 1, "Formal " + f.name + " = ");
      else
        os << fmt::format("  Formal {} {}\n", f.name, p.at(f.range));
    }
    p.stmts(l.body, 1);
  }
  for (const ModelDecl &m : file.models) {
    os << fmt::format("Model {} {}\n", m.name, p.at(m.range));
    for (const InputDecl &in : m.inputs) {
      std::string dims;
      for (size_t i = 0; i < in.dims.size(); ++i)
        dims += (i ? ", " : "") + std::to_string(in.dims[i]);
      os << fmt::format("  Input {}: {}[{}] {}\n", in.name, in.dtype, dims, p.at(in.range));
    }
    p.stmts(m.body, 1);
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
  case Expr::Kind::Unary:
    return "-" + describe(e.items[0]);
  case Expr::Kind::Binary:
    return describe(e.items[0]) + (e.op == '>' ? " -> " : std::string(" ") + e.op + " ") + describe(e.items[1]);
  }
  return "";
}

} // namespace soma::ast
