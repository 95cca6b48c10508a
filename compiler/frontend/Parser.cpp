// Parse tree -> AST. The rule of Soma.g4 that each builder handles is written above it.
#include "frontend/Parser.h"

#include "SomaLexer.h"
#include "SomaParser.h"
#include "antlr4-runtime.h"

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
  ErrorListener(uint32_t file, const SourceManager &sm, DiagnosticEngine &diags)
      : file_(file), sm_(sm), diags_(diags) {}
  void syntaxError(antlr4::Recognizer *, antlr4::Token *offending, size_t line, size_t col,
                   const std::string &msg, std::exception_ptr) override {
    ++count;
    if (count > 20)
      return; // one mistake can cascade; the first ones are the useful ones
    SourceLoc begin = sm_.locAt(file_, static_cast<unsigned>(line), static_cast<unsigned>(col) + 1);
    SourceLoc end = begin;
    if (offending && offending->getType() != antlr4::Token::EOF)
      end.offset += static_cast<uint32_t>(offending->getText().size());
    diags_.report(DiagKind::SyntaxError, {begin, end}, tidy(msg));
  }
  unsigned count = 0;

private:
  static std::string tidy(std::string msg) {
    for (auto [from, to] : {std::pair<std::string, std::string>{"<EOF>", "end of file"},
                            {"token recognition error at: ", "unexpected character "}}) {
      for (size_t p; (p = msg.find(from)) != std::string::npos;)
        msg.replace(p, from.size(), to);
    }
    // ANTLR lists every token an expression may start with; say so instead.
    size_t set = msg.find("expecting {");
    if (set != std::string::npos && msg.find("ID", set) != std::string::npos && msg.find("INT", set) != std::string::npos)
      msg = msg.substr(0, set) + "expecting an expression";
    return msg;
  }
  uint32_t file_;
  const SourceManager &sm_;
  DiagnosticEngine &diags_;
};

class Builder {
public:
  Builder(uint32_t file, const OffsetMap &map, DiagnosticEngine &diags)
      : file_(file), map_(map), diags_(diags) {}

  SourceRange range(antlr4::ParserRuleContext *ctx) {
    return {loc(ctx->getStart()->getStartIndex()), loc(ctx->getStop()->getStopIndex() + 1)};
  }
  SourceRange range(antlr4::Token *tok) {
    return {loc(tok->getStartIndex()), loc(tok->getStopIndex() + 1)};
  }

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
      e.number = std::strtod(num->getText().c_str(), nullptr);
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
  std::string_view text = sm.text(fileId);
  antlr4::ANTLRInputStream input(text.data(), text.size());
  soma_antlr::SomaLexer lexer(&input);
  ErrorListener listener(fileId, sm, diags);
  lexer.removeErrorListeners();
  lexer.addErrorListener(&listener);
  antlr4::CommonTokenStream tokens(&lexer);
  G parser(&tokens);
  parser.removeErrorListeners();
  parser.addErrorListener(&listener);
  G::FileContext *tree = parser.file();
  if (listener.count)
    return std::nullopt;
  OffsetMap map(text);
  unsigned before = diags.errorCount();
  ast::File file = Builder(fileId, map, diags).file(tree);
  if (diags.errorCount() != before)
    return std::nullopt;
  return file;
}

} // namespace soma
