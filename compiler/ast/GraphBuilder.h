// The builder behind checkModel (ast/Sema.h), shared by the files that implement it:
//   Graph.cpp         the model block, statements and scopes, the graph's bookkeeping
//   Expressions.cpp   tensor expressions, calls and the functions of tensors (exp, sum, ...)
//   LayerCalls.cpp    built-in layers, checked against their records (layers/Layer.h)
//   Initializers.cpp  `param` statements and initializers
//   UserLayers.cpp    user-defined layers: their declarations and each instance
// Internal to ast/: nothing outside includes it.
#pragma once
#include "ast/Args.h"
#include "ast/Sema.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace soma::graph {

// Functions of tensors usable in expressions, besides the layers.
enum class Fn { Exp, Log, Sqrt, Abs, Erf, Maximum, Minimum, Sum, Mean, Max, Reshape, Transpose, Concat, Dim };
std::optional<Fn> function(const std::string &name);
std::vector<std::string> functionNames();

// A value an expression has: a tensor (a graph node) or a number, folded as it is met.
struct Value {
  bool isTensor = false;
  int node = -1;     // tensor
  double number = 0; // number
  bool isInteger = false;
};

struct Scope {
  std::map<std::string, Value> names;
  std::map<std::string, SourceRange> later; // names the block defines further down
  std::string prefix;                       // "" in the model; "highway_1." inside an instance
  int prev = -1;                            // the value a chain statement starts from
};

class GraphBuilder {
public:
  GraphBuilder(const ast::File &file, DiagnosticEngine &diags);
  std::optional<ModelSpec> build(const ast::ModelDecl &m);

private:
  // Statements (Graph.cpp)
  std::optional<Value> block(const std::vector<ast::Stmt> &body, Scope &scope);
  static bool explicitInput(const ast::Expr &e, const Scope &scope);
  bool reserved(const std::string &name);

  // Parameters and initializers (Initializers.cpp)
  std::optional<Value> param(const ast::Stmt &s, Scope &scope);
  static void fans(ParamSpec &p);
  std::optional<InitSpec> initializer(const ast::Expr &e, Scope &scope, bool isMatrix);

  // Expressions (Expressions.cpp)
  std::optional<Value> eval(const ast::Expr &e, Scope &scope, int implicit);
  std::optional<Value> notALayer(const ast::Expr &e);
  std::optional<Value> binary(const ast::Expr &e, Value a, Value b);
  std::optional<Value> elementwise(MathOp op, int x, int y, SourceRange range, const std::string &what);
  std::string describeNode(int v);
  std::optional<Value> matmul(const ast::Expr &e, Value a, Value b);
  int number(double v, SourceRange range);
  std::optional<Value> unary(MathOp op, int x, SourceRange range);
  std::optional<std::vector<ast::Arg>> folded(const std::vector<ast::Arg> &args, Scope &scope);
  bool fold(ast::Expr &e, Scope &scope);
  std::optional<Value> call(const std::string &callee, SourceRange calleeRange, SourceRange range,
                            std::vector<ast::Arg> args, Scope &scope, int implicit);
  std::optional<int> inputOf(const std::string &callee, SourceRange range, std::vector<ast::Arg> &args, Scope &scope,
                             int implicit, double *number = nullptr);
  std::optional<Value> foldNumber(Fn fn, const std::string &callee, SourceRange range, double x);
  std::optional<Value> functionCall(Fn fn, const std::string &callee, SourceRange range, std::vector<ast::Arg> args,
                                    Scope &scope, int implicit);
  std::optional<int64_t> axisOf(const ast::Expr *arg, size_t rank, const std::string &callee);

  // Built-in layers (LayerCalls.cpp)
  std::optional<Value> layerCall(LayerKind kind, const std::string &callee, SourceRange range,
                                 std::vector<ast::Arg> args, Scope &scope, int implicit);

  // User-defined layers (UserLayers.cpp)
  bool checkLayerDecls();
  std::optional<Value> instantiate(const ast::LayerDecl &decl, SourceRange range, const std::vector<ast::Arg> &args,
                                   Scope &caller, int implicit);

  // Bookkeeping (Graph.cpp)
  static GraphNode derived(GraphNode::Kind kind, std::vector<int> args, Dims dims, bool batched, SourceRange range);
  Value tensor(GraphNode n);
  int add(GraphNode n);
  bool withinLimit(const std::string &what, const Dims &dims, SourceRange range);
  static std::string fmtNumber(double v);

  const ast::File &file_;
  DiagnosticEngine &diags_;
  ArgBinder args_;
  ModelSpec spec_;
  std::map<std::string, const ast::LayerDecl *> userLayers_;
  std::map<std::string, int> counts_;         // per name prefix: dense -> 2, highway_1.dense -> 1
  std::vector<std::string> active_;           // user layers being instantiated
  std::map<std::string, int64_t> expansions_; // instances of each user layer so far
  // Values a model may have once its user layers are expanded: a hundred times a ResNet-152's.
  static constexpr size_t kMaxNodes = 100000;
};

} // namespace soma::graph
