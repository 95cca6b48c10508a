// Parse tree -> AST. The rule of Soma.g4 that each builder handles is written above it.
#include "frontend/Parser.h"

#include "SomaLexer.h"
#include "SomaParser.h"
#include "antlr4-runtime.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace soma {

namespace {

using G = soma_antlr::SomaParser;

// ANTLR indexes characters in code points; SourceLocs are byte offsets.
class OffsetMap {
public:
  explicit OffsetMap(std::string_view text) {
    for (uint32_t i = 0; i < text.size(); ++i)
      if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80)
        starts_.push_back(i);
    starts_.push_back(static_cast<uint32_t>(text.size()));
  }
  uint32_t byteOffset(size_t codePoint) const {
    return codePoint < starts_.size() ? starts_[codePoint] : starts_.back();
  }

private:
  std::vector<uint32_t> starts_;
};

class ErrorListener : public antlr4::BaseErrorListener {
public:
  ErrorListener(uint32_t file, const SourceManager &sm, const OffsetMap &map, DiagnosticEngine &diags)
      : file_(file), sm_(sm), map_(map), diags_(diags) {}
  void syntaxError(antlr4::Recognizer *, antlr4::Token *offending, size_t line, size_t col, const std::string &msg,
                   std::exception_ptr) override {
    ++count;
    if (count > 20)
      return; // one mistake can cascade; the first ones are the useful ones
    SourceLoc begin, end;
    if (offending && offending->getType() != antlr4::Token::EOF) {
      begin = {file_, map_.byteOffset(offending->getStartIndex())};
      end = {file_, map_.byteOffset(offending->getStopIndex() + 1)};
    } else { // ANTLR counts columns in code points; locations are bytes
      begin = sm_.locAt(file_, static_cast<unsigned>(line), 1);
      std::string_view text = sm_.text(file_);
      for (size_t i = 0; i < col && begin.offset < text.size(); ++i)
        begin.offset += static_cast<uint32_t>(std::max<size_t>(utf8Sequence(text, begin.offset), 1));
      end = begin;
    }
    diags_.report(DiagKind::SyntaxError, {begin, end}, tidy(msg));
  }
  unsigned count = 0;

private:
  static std::string tidy(std::string msg) {
    for (const auto &[from, to] : {std::pair<std::string, std::string>{"<EOF>", "end of file"},
                                   {"token recognition error at: ", "unexpected character "}}) {
      for (size_t p; (p = msg.find(from)) != std::string::npos;)
        msg.replace(p, from.size(), to);
    }
    // ANTLR lists every token an expression may start with; say so instead.
    size_t set = msg.find("expecting {");
    if (set != std::string::npos && msg.find("ID", set) != std::string::npos &&
        msg.find("INT", set) != std::string::npos)
      msg = msg.substr(0, set) + "expecting an expression";
    return msg;
  }
  uint32_t file_;
  const SourceManager &sm_;
  const OffsetMap &map_;
  DiagnosticEngine &diags_;
};

// How deep expressions may nest: each parenthesis, bracket, call, unary minus and each operator of
// a chain such as `a + b + c` is one level. ANTLR's parser and every stage after it recurse on
// nesting, so this bounds their stack and their time; no model needs a tenth of it.
constexpr int kMaxNesting = 256;

// Before parsing: brackets and unary minus are the nesting that ANTLR's own parser recurses on (a
// chain of binary operators it parses in a loop). Returns the first token past the limit, or null.
antlr4::Token *tooDeepForParser(const std::vector<antlr4::Token *> &tokens) {
  std::vector<int> open; // the depth at each open bracket
  int depth = 0;
  antlr4::Token *prev = nullptr;
  auto isOperand = [](antlr4::Token *t) { // a token that can end an operand
    if (!t)
      return false;
    size_t type = t->getType();
    if (type == G::ID || type == G::INT || type == G::FLOAT || type == G::STRING)
      return true;
    std::string text = t->getText();
    return text == ")" || text == "]" || text == "model" || text == "input" || text == "train" || text == "data" ||
           text == "layer";
  };
  for (antlr4::Token *t : tokens) {
    std::string text = t->getType() == G::ID || t->getType() == G::STRING ? "" : t->getText();
    if (text == "(" || text == "[") {
      open.push_back(depth);
      ++depth;
    } else if (text == ")" || text == "]") {
      depth = open.empty() ? 0 : open.back();
      if (!open.empty())
        open.pop_back();
    } else if (text == "-" && !isOperand(prev)) {
      ++depth; // a unary minus: one level until its operand ends
    } else if (text == "+" || text == "-" || text == "*" || text == "/" || text == "@" || text == "->" || text == "," ||
               text == "=" || text == ":" || text == "{" || text == "}") {
      depth = open.empty() ? 0 : open.back() + 1; // the operand's unary minuses are done
    }
    if (depth > kMaxNesting)
      return t;
    prev = t;
  }
  return nullptr;
}

// After parsing, without recursion: the outermost expression that nests deepest, and its depth,
// chains included.
std::pair<antlr4::ParserRuleContext *, int> deepestExpr(antlr4::tree::ParseTree *root) {
  struct Item {
    antlr4::tree::ParseTree *node;
    int depth;
    antlr4::ParserRuleContext *outermost;
  };
  std::vector<Item> stack{{root, 0, nullptr}};
  std::pair<antlr4::ParserRuleContext *, int> deepest{nullptr, 0};
  while (!stack.empty()) {
    Item item = stack.back();
    stack.pop_back();
    if (auto *e = dynamic_cast<G::ExprContext *>(item.node)) {
      ++item.depth;
      if (!item.outermost)
        item.outermost = e;
      if (item.depth > deepest.second)
        deepest = {item.outermost, item.depth};
      if (item.depth > kMaxNesting)
        return deepest;
    }
    for (antlr4::tree::ParseTree *child : item.node->children)
      stack.push_back({child, item.depth, item.outermost});
  }
  return deepest;
}

class Builder {
public:
  Builder(uint32_t file, const OffsetMap &map, DiagnosticEngine &diags) : file_(file), map_(map), diags_(diags) {}

  SourceRange range(antlr4::ParserRuleContext *ctx) {
    return {loc(ctx->getStart()->getStartIndex()), loc(ctx->getStop()->getStopIndex() + 1)};
  }
  SourceRange range(antlr4::Token *tok) { return {loc(tok->getStartIndex()), loc(tok->getStopIndex() + 1)}; }

  // file: decl* EOF
  ast::File file(G::FileContext *ctx) {
    ast::File f;
    f.fileId = file_;
    for (G::DeclContext *d : ctx->decl()) {
      if (d->modelDecl())
        f.models.push_back(model(d->modelDecl()));
      else if (d->layerDecl())
        f.layers.push_back(layerDecl(d->layerDecl()));
      else
        f.trains.push_back(train(d->trainDecl()));
    }
    return f;
  }

  // modelDecl: 'model' ident '{' (inputDecl | stmt)* '}'
  ast::ModelDecl model(G::ModelDeclContext *ctx) {
    ast::ModelDecl m;
    m.name = ctx->name->getText();
    m.range = range(ctx);
    m.nameRange = range(ctx->name);
    for (G::ModelItemContext *item : ctx->modelItem()) {
      if (item->inputDecl())
        m.inputs.push_back(input(item->inputDecl()));
      else
        m.body.push_back(stmt(item->stmt()));
    }
    return m;
  }

  // inputDecl: 'input' ident ':' ID '[' INT (',' INT)* ']'
  ast::InputDecl input(G::InputDeclContext *ctx) {
    ast::InputDecl in;
    in.name = ctx->name->getText();
    in.range = range(ctx);
    in.nameRange = range(ctx->name);
    in.dtype = ctx->tensorType()->dtype->getText();
    in.dtypeRange = range(ctx->tensorType()->dtype);
    for (antlr4::tree::TerminalNode *n : ctx->tensorType()->INT()) {
      in.dims.push_back(std::strtoll(n->getText().c_str(), nullptr, 10));
      in.dimRanges.push_back(range(n->getSymbol()));
    }
    return in;
  }

  // stmt: (ident '=')? expr
  ast::Stmt stmt(G::StmtContext *ctx) {
    ast::Stmt s;
    s.range = range(ctx);
    if (ctx->target) {
      s.target = ctx->target->getText();
      s.targetRange = range(ctx->target);
    }
    s.value = expr(ctx->expr());
    return s;
  }

  // layerDecl: 'layer' ident '(' formal (',' formal)* ')' '{' layerItem* '}'
  ast::LayerDecl layerDecl(G::LayerDeclContext *ctx) {
    ast::LayerDecl l;
    l.name = ctx->name->getText();
    l.range = range(ctx);
    l.nameRange = range(ctx->name);
    for (G::FormalContext *f : ctx->formal()) {
      ast::Formal formal;
      formal.name = f->name->getText();
      formal.range = range(f);
      if (f->expr()) {
        formal.hasDefault = true;
        formal.defaultValue = expr(f->expr());
      }
      l.formals.push_back(std::move(formal));
    }
    for (G::LayerItemContext *item : ctx->layerItem()) {
      if (auto *p = item->paramDecl()) {
        ast::Stmt s;
        s.kind = ast::Stmt::Kind::Param;
        s.range = range(p);
        s.target = p->name->getText();
        s.targetRange = range(p->name);
        std::vector<G::ExprContext *> exprs = p->expr();
        for (G::ExprContext *d : exprs)
          if (d != p->init)
            s.dims.push_back(expr(d));
        if (p->init) {
          s.value = expr(p->init);
        } else {
          s.value.kind = ast::Expr::Kind::Name;
          s.value.text = "default";
          s.value.range = s.targetRange;
        }
        l.body.push_back(std::move(s));
      } else if (auto *r = item->returnStmt()) {
        ast::Stmt s;
        s.kind = ast::Stmt::Kind::Return;
        s.range = range(r);
        s.value = expr(r->expr());
        l.body.push_back(std::move(s));
      } else {
        l.body.push_back(stmt(item->stmt()));
      }
    }
    return l;
  }

  // trainDecl: 'train' ID '{' (dataDecl | setting)* '}'
  ast::TrainDecl train(G::TrainDeclContext *ctx) {
    ast::TrainDecl t;
    t.modelName = ctx->name->getText();
    t.range = range(ctx);
    t.nameRange = range(ctx->name);
    for (G::TrainItemContext *item : ctx->trainItem()) {
      if (auto *d = item->dataDecl())
        t.data.push_back({d->name->getText(), range(d), range(d->name), expr(d->expr())});
      else {
        auto *s = item->setting();
        t.settings.push_back({s->key->getText(), range(s), range(s->key), expr(s->expr())});
      }
    }
    return t;
  }

  // argList: arg (',' arg)*;  arg: (ID ':')? expr
  std::vector<ast::Arg> args(G::ArgListContext *ctx) {
    std::vector<ast::Arg> out;
    for (G::ArgContext *a : ctx->arg()) {
      ast::Arg arg;
      if (a->name) {
        arg.name = a->name->getText();
        arg.nameRange = range(a->name);
      }
      arg.value = expr(a->expr());
      out.push_back(std::move(arg));
    }
    return out;
  }

  ast::Expr expr(G::ExprContext *ctx) {
    ast::Expr e;
    e.range = range(ctx);
    if (auto *p = dynamic_cast<G::ParenExprContext *>(ctx)) {
      e = expr(p->expr());
      e.range = range(ctx);
    } else if (auto *n = dynamic_cast<G::NegExprContext *>(ctx)) {
      ast::Expr operand = expr(n->expr());
      if (operand.kind == ast::Expr::Kind::Number) { // a negative literal
        e = operand;
        e.range = range(ctx);
        e.number = -e.number;
      } else {
        e.kind = ast::Expr::Kind::Unary;
        e.op = '-';
        e.items.push_back(std::move(operand));
      }
    } else if (auto *m = dynamic_cast<G::MulExprContext *>(ctx)) {
      binary(e, m->expr(0), m->expr(1), m->op->getText()[0]);
    } else if (auto *a = dynamic_cast<G::AddExprContext *>(ctx)) {
      binary(e, a->expr(0), a->expr(1), a->op->getText()[0]);
    } else if (auto *ch = dynamic_cast<G::ChainExprContext *>(ctx)) {
      binary(e, ch->expr(0), ch->expr(1), '>');
    } else if (auto *c = dynamic_cast<G::CallExprContext *>(ctx)) {
      e.kind = ast::Expr::Kind::Call;
      e.text = c->callee->getText();
      e.calleeRange = range(c->callee);
      if (c->argList())
        e.args = args(c->argList());
    } else if (auto *num = dynamic_cast<G::NumberExprContext *>(ctx)) {
      e.kind = ast::Expr::Kind::Number;
      e.isInteger = num->INT() != nullptr;
      number(e, num->getText());
    } else if (auto *s = dynamic_cast<G::StringExprContext *>(ctx)) {
      e.kind = ast::Expr::Kind::String;
      std::string raw = s->getText();
      for (size_t i = 1; i + 1 < raw.size(); ++i) {
        char ch = raw[i];
        if (ch == '\\' && i + 2 < raw.size()) {
          ch = raw[++i];
          ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch;
        }
        e.text += ch;
      }
    } else if (auto *list = dynamic_cast<G::ListExprContext *>(ctx)) {
      e.kind = ast::Expr::Kind::List;
      for (G::ExprContext *item : list->expr())
        e.items.push_back(expr(item));
    } else {
      auto *name = dynamic_cast<G::NameExprContext *>(ctx);
      e.kind = ast::Expr::Kind::Name;
      e.text = name->getText();
    }
    return e;
  }

  // Integers are exact up to 2^53 (they are held as doubles); other numbers must be finite and, if
  // not zero, not so small that they read as zero.
  void number(ast::Expr &e, const std::string &text) {
    constexpr std::string_view kMaxInteger = "9007199254740992"; // 2^53
    std::string_view digits(text);
    while (digits.size() > 1 && digits[0] == '0')
      digits.remove_prefix(1);
    bool tooLarge = digits.size() > kMaxInteger.size() || (digits.size() == kMaxInteger.size() && digits > kMaxInteger);
    errno = 0;
    e.number = std::strtod(text.c_str(), nullptr);
    bool zero = text.find_first_of("123456789") == std::string::npos ||
                text.find_first_of("123456789") > text.find_first_of("eE");
    if (e.isInteger && tooLarge)
      diags_.report(DiagKind::NumberRange, e.range, text, "integers are at most 2^53 (9007199254740992)");
    else if (!std::isfinite(e.number) || (errno == ERANGE && std::abs(e.number) > 1))
      diags_.report(DiagKind::NumberRange, e.range, text, "numbers are at most about 1.8e308");
    else if (!zero && (e.number == 0 || errno == ERANGE))
      diags_.report(DiagKind::NumberRange, e.range, text,
                    "it is too small to tell from zero (the smallest is about 2.2e-308)");
  }

  void binary(ast::Expr &e, G::ExprContext *lhs, G::ExprContext *rhs, char op) {
    e.kind = ast::Expr::Kind::Binary;
    e.op = op;
    e.items.push_back(expr(lhs));
    e.items.push_back(expr(rhs));
  }

private:
  SourceLoc loc(size_t codePoint) { return {file_, map_.byteOffset(codePoint)}; }
  uint32_t file_;
  const OffsetMap &map_;
  DiagnosticEngine &diags_;
};

} // namespace

std::optional<ast::File> parseFile(uint32_t fileId, const SourceManager &sm, DiagnosticEngine &diags) {
  std::string text(sm.text(fileId));
  // ANTLR converts the text to code points and throws on ill-formed UTF-8: refuse it first.
  size_t bad = invalidUtf8(text);
  if (bad != std::string::npos) {
    SourceLoc at{fileId, static_cast<uint32_t>(bad)};
    diags.report(DiagKind::InvalidEncoding, {at, {fileId, at.offset + 1}},
                 fmt::format("{:02X}", static_cast<unsigned char>(text[bad])));
    return std::nullopt;
  }
  // A byte-order mark says only that the file is UTF-8: ANTLR sees blanks, and offsets stay.
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0)
    text.replace(0, 3, "   ");
  OffsetMap map(text);
  antlr4::ANTLRInputStream input(text.data(), text.size());
  soma_antlr::SomaLexer lexer(&input);
  ErrorListener listener(fileId, sm, map, diags);
  lexer.removeErrorListeners();
  lexer.addErrorListener(&listener);
  antlr4::CommonTokenStream tokens(&lexer);
  tokens.fill();
  if (listener.count)
    return std::nullopt;
  auto tooDeep = [&](antlr4::Token *start, antlr4::Token *stop) {
    diags.report(DiagKind::TooDeep,
                 {{fileId, map.byteOffset(start->getStartIndex())}, {fileId, map.byteOffset(stop->getStopIndex() + 1)}},
                 kMaxNesting);
    return std::nullopt;
  };
  if (antlr4::Token *t = tooDeepForParser(tokens.getTokens()))
    return tooDeep(t, t);
  G parser(&tokens);
  parser.removeErrorListeners();
  parser.addErrorListener(&listener);
  G::FileContext *tree = parser.file();
  if (listener.count)
    return std::nullopt;
  auto [deepest, depth] = deepestExpr(tree);
  if (depth > kMaxNesting)
    return tooDeep(deepest->getStart(), deepest->getStop());
  unsigned before = diags.errorCount();
  ast::File file = Builder(fileId, map, diags).file(tree);
  if (diags.errorCount() != before)
    return std::nullopt;
  return file;
}

} // namespace soma
